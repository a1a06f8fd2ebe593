"""Contract tests for the lab's task library, run over the whole registry, plus exact checks of
the quantities individual tasks expose (Hessian spectra, retrieval counts, singular values)."""

from __future__ import annotations

import math
import os
import socket
import sysconfig
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from optimlab.lab.tasks import TASKS, TaskInstance, TaskSpec, get_task
from optimlab.lab.tasks import char_lm, classification
from optimlab.lab.tasks.associative_memory import AssociativeMemory
from optimlab.lab.tasks.matrix_sensing import MatrixSensing
from optimlab.lab.tasks.quadratic import Quadratic

NAMES = sorted(TASKS)
# Adam steps for the descent check; char_lm steps are the expensive ones.
DESCENT_STEPS = {"char_lm": 8}



def _state(instance: TaskInstance) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in instance.model.state_dict().items()}


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("name", NAMES)
def test_spec(name):
    task = get_task(name)
    spec = task.spec
    assert isinstance(spec, TaskSpec) and spec.name == name == task.name
    assert isinstance(spec.default_steps, int) and spec.default_steps > 0
    assert spec.default_batch_size is None or spec.default_batch_size > 0
    assert spec.primary_metric in spec.metrics
    assert spec.options == task.options and "lr" in spec.adamw
    assert task.description and task.__doc__


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic_per_seed(name):
    task = get_task(name)
    torch.manual_seed(123)
    a = task.build(0)
    torch.manual_seed(456)  # the global RNG must not matter
    b = task.build(0)
    c = task.build(1)
    sa, sb, sc = _state(a), _state(b), _state(c)
    assert sa.keys() == sb.keys() == sc.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa), "seed 1 built the same model"
    for step in (0, 3):
        assert _same_tensors(a.batch(step), b.batch(step))
    if a.batch(0):
        assert not _same_tensors(a.batch(0), c.batch(0)), "seed 1 gave the same batch"
    if a.full_batch:
        assert _same_tensors(a.batch(0), a.batch(7))
    else:
        assert not _same_tensors(a.batch(0), a.batch(1))


@pytest.mark.parametrize("name", NAMES)
def test_build_leaves_global_rng_alone(name):
    torch.manual_seed(0)
    np.random.seed(0)
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    get_task(name).build(0).batch(0)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_finite_scalar_with_grad(name):
    inst = get_task(name).build(0)
    loss = inst.loss(inst.model, inst.batch(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in inst.model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_adam_lowers_the_loss(name):
    task = get_task(name)
    inst = task.build(0)
    probe = inst.batch(0)
    with torch.no_grad():
        before = float(inst.loss(inst.model, probe))
    opt = torch.optim.Adam(inst.model.parameters(), lr=task.spec.adamw["lr"])
    for step in range(DESCENT_STEPS.get(name, 20)):
        loss = inst.loss(inst.model, inst.batch(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(inst.loss(inst.model, probe))
    assert after < 0.95 * before, f"{name}: loss {before:.4g} -> {after:.4g}"


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_returns_documented_finite_metrics(name):
    task = get_task(name)
    inst = task.build(0)
    results = []
    for training in (True, False):
        inst.model.train(training)
        # the model argument defaults to the instance's own model
        metrics = inst.evaluate(inst.model) if training else inst.evaluate()
        assert inst.model.training is training  # mode restored
        assert list(metrics) == list(task.spec.metrics)
        assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
        results.append(metrics)
    assert results[0] == results[1]
    assert all(p.grad is None for p in inst.model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_no_network_access(name, monkeypatch):
    # data loaded earlier in this process is cached: load it again under the patch
    caches = {"digits_mlp": classification._digits, "mnist1d": classification._mnist1d,
              "char_lm": char_lm.stdlib_corpus}
    if name in caches:
        caches[name].cache_clear()

    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    inst = get_task(name).build(0)
    inst.batch(0)
    inst.batch(1)
    inst.evaluate()


@pytest.mark.parametrize("name", NAMES)
def test_role_hints_are_accepted_by_assign_roles(name):
    roles_module = pytest.importorskip("optimlab.core.roles")
    inst = get_task(name).build(0)
    assignment = roles_module.assign_roles(inst.model, **inst.role_hints)
    trainable = [n for n, p in inst.model.named_parameters() if p.requires_grad]
    assert sorted(assignment.roles) == sorted(trainable)
    head = inst.role_hints.get("head", "auto")
    if head is None:
        assert "head" not in assignment.roles.values()
    elif head != "auto":
        assert assignment.roles[f"{head}.weight"] == "head"
    if "embedding" in inst.role_hints:
        assert assignment.roles[f"{inst.role_hints['embedding']}.weight"] == "embedding"


# ------------------------------------------------------------------ task-specific checks

@pytest.mark.parametrize("options, expected", [
    (dict(dim=12, spectrum="logspace", condition=100.0), np.logspace(0, -2, 12)),
    (dict(dim=12, spectrum="powerlaw", exponent=1.5, lambda_max=3.0),
     3.0 * np.arange(1, 13) ** -1.5),
    (dict(dim=6, spectrum="given", eigenvalues=(5.0, 0.1, 2.0, 2.0, 1.0, 0.5), form="matrix",
          rows=2), [5.0, 2.0, 2.0, 1.0, 0.5, 0.1]),
    (dict(dim=8, spectrum="powerlaw", rotate=False), 1.0 / np.arange(1, 9)),
])
def test_quadratic_hessian_has_the_requested_spectrum(options, expected):
    task = Quadratic(**options)
    inst = task.build(3)
    shape = inst.model.x.shape
    batch = inst.batch(0)

    def training_loss(flat):  # the task's own loss, as a function of the flattened parameter
        return inst.loss(SimpleNamespace(x=flat.reshape(shape)), batch)

    hess = torch.autograd.functional.hessian(training_loss, inst.model.x.detach().reshape(-1))
    assert hess.shape == (task.dim, task.dim)
    eig = torch.linalg.eigvalsh(hess.double()).flip(0).numpy()
    assert eig == pytest.approx(np.asarray(expected), rel=1e-4, abs=1e-6)
    assert inst.hessian_eigenvalues.numpy() == pytest.approx(np.asarray(expected), rel=1e-6)


def test_quadratic_noise_is_unbiased_and_seeded():
    inst = Quadratic(dim=5, noise=0.5).build(0)
    assert not inst.full_batch
    grads = []
    for step in range(2000):
        inst.model.zero_grad()
        inst.loss(inst.model, inst.batch(step)).backward()
        grads.append(inst.model.x.grad.clone())
    exact = inst.hessian @ (inst.model.x.detach() - inst.optimum)
    assert torch.allclose(torch.stack(grads).mean(0), exact, atol=0.05)


def _perfect_memory(inst, targets):
    """W with W e_x = u_{targets[x]} exactly, for N <= d and orthonormal outputs."""
    e, u = inst.model.input_emb, inst.model.output_emb
    w = u[targets].T @ torch.linalg.solve(e @ e.T, e)
    with torch.no_grad():
        inst.model.memory.weight.copy_(w)


def test_associative_memory_counts_stored_associations():
    task = AssociativeMemory(num_items=16, num_outputs=8, d=32, zipf_exponent=1.2)
    inst = task.build(0)
    assert inst.evaluate()["stored"] == 0.0  # W = 0 retrieves nothing (ties fail)
    q, _ = torch.linalg.qr(torch.randn(32, 8, generator=torch.Generator().manual_seed(1)))
    inst.model.output_emb.copy_(q.T)  # orthonormal outputs: retrieval is exact
    _perfect_memory(inst, inst.targets)
    m = inst.evaluate()
    assert m["stored"] == 16 and m["stored_fraction"] == 1.0
    assert m["weighted_accuracy"] == pytest.approx(1.0, abs=1e-6)
    wrong = torch.tensor([0, 3, 9])  # store wrong outputs for three items
    corrupted = inst.targets.clone()
    corrupted[wrong] = (corrupted[wrong] + 1) % 8
    _perfect_memory(inst, corrupted)
    m = inst.evaluate()
    assert m["stored"] == 13 and m["stored_fraction"] == pytest.approx(13 / 16)
    p = inst.frequencies
    assert m["weighted_accuracy"] == pytest.approx(1.0 - float(p[wrong].sum()), abs=1e-6)
    assert inst.retrieved(inst.model).tolist() == [i not in (0, 3, 9) for i in range(16)]
    ranks = torch.arange(1, 17, dtype=torch.float64) ** -1.2
    assert torch.allclose(p.double(), ranks / ranks.sum(), atol=1e-7)


@pytest.mark.parametrize("factorization", ["symmetric", "asymmetric"])
def test_matrix_sensing_reports_singular_values_of_the_product(factorization):
    task = MatrixSensing(n=6, rank=2, width=4, factorization=factorization,
                         target="psd" if factorization == "symmetric" else "general")
    inst = task.build(0)
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(6, 4, generator=gen)
    v = torch.randn(6, 4, generator=gen)
    with torch.no_grad():
        inst.model.left.weight.copy_(u)
        if factorization == "asymmetric":
            inst.model.right.weight.copy_(v)
    product = u @ (u if factorization == "symmetric" else v).T
    want = np.linalg.svd(product.double().numpy(), compute_uv=False)
    m = inst.evaluate()
    assert task.num_svs == 4
    for i in range(4):
        assert m[f"sv_{i + 1}"] == pytest.approx(want[i], rel=1e-5, abs=1e-5)
    assert m["rank"] == float((want > float(inst.target_singular_values[-1]) / 2).sum())
    assert torch.allclose(inst.singular_values(inst.model), torch.tensor(want), rtol=1e-5)
    assert m["eval_loss"] == pytest.approx(
        0.5 * float((product - inst.target_matrix).pow(2).sum()), rel=1e-5)


def test_matrix_sensing_exact_factor_has_zero_error_and_target_spectrum():
    task = MatrixSensing(n=8, rank=3, width=3, condition=8.0)
    inst = task.build(2)
    evals, evecs = torch.linalg.eigh(inst.target_matrix.double())
    factor = evecs[:, -3:] * evals[-3:].clamp_min(0).sqrt()
    with torch.no_grad():
        inst.model.left.weight.copy_(factor.float())
    m = inst.evaluate()
    assert m["rel_error"] < 1e-5 and m["train_loss"] < 1e-9 and m["rank"] == 3.0
    # geometric from 1 down to 1/condition
    assert [m["sv_1"], m["sv_2"], m["sv_3"]] == pytest.approx([1.0, 8 ** -0.5, 1 / 8], rel=1e-5)


def test_char_lm_reads_real_stdlib_text():
    corpus, files = char_lm.stdlib_corpus(200_000)
    root = sysconfig.get_paths()["stdlib"]
    assert files and all(os.path.isfile(os.path.join(root, f)) for f in files)
    assert list(files) == sorted(files)
    with open(os.path.join(root, files[0]), encoding="utf-8") as fh:
        first = fh.read()
    assert corpus.startswith(first[:1000])
    assert "def " in corpus and "import " in corpus
    ids = char_lm.encode(corpus)
    assert ids.max() < char_lm.VOCAB_SIZE and (ids == char_lm.UNK).mean() < 0.01
    assert char_lm.decode(char_lm.encode("def f(x):\n\treturn x")) == "def f(x):\n\treturn x"
    inst = get_task("char_lm", corpus_chars=200_000).build(0)
    assert inst.corpus_files == files
    assert len(inst.train_tokens) + len(inst.val_tokens) == len(corpus)
    x, y = inst.batch(0)
    assert x.shape == y.shape == (32, 64) and torch.equal(x[:, 1:], y[:, :-1])
    assert inst.role_hints == {"head": "lm_head", "embedding": "tok_emb"}
    tied = get_task("char_lm", corpus_chars=200_000, tie_head=True).build(0).model
    assert tied.lm_head.weight is tied.tok_emb.weight


def test_random_features_closed_form_risk_matches_samples():
    inst = get_task("random_features", dim=200, num_features=40, noise=0.0).build(0)
    with torch.no_grad():
        inst.model.readout.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
        losses = [float(inst.loss(inst.model, inst.batch(s))) for s in range(400)]
    assert np.mean(losses) == pytest.approx(inst.evaluate()["risk"], rel=0.05)
    with torch.no_grad():
        inst.model.readout.weight.copy_(inst.optimal_head[None])
    m = inst.evaluate()
    assert m["excess_risk"] < 1e-6 and m["risk"] == pytest.approx(m["approx_error"], rel=1e-4)


# ------------------------------------------------------------------ bad input

BAD_OPTIONS = [
    ("quadratic", dict(dim=0), "dim"),
    ("quadratic", dict(spectrum="flat"), "spectrum"),
    ("quadratic", dict(spectrum="given", eigenvalues=(1.0, -1.0)), "eigenvalues"),
    ("quadratic", dict(form="matrix", rows=7), "rows"),
    ("rosenbrock", dict(start=(1.0,)), "start"),
    ("rastrigin", dict(dim=True), "dim"),
    ("random_features", dict(capacity=-1.0), "capacity"),
    ("random_features", dict(source=float("nan")), "source"),
    ("associative_memory", dict(zipf_exponent=-0.5), "zipf_exponent"),
    ("modular_arithmetic", dict(p=96), "p"),
    ("modular_arithmetic", dict(operation="pow"), "operation"),
    ("modular_arithmetic", dict(train_fraction=1.0), "train_fraction"),
    ("matrix_sensing", dict(rank=30), "rank"),
    ("matrix_sensing", dict(factorization="symmetric", target="general"), "factorization"),
    ("deep_linear", dict(depth=0), "depth"),
    ("digits_mlp", dict(activation="swish"), "activation"),
    ("mnist1d", dict(arch="resnet"), "arch"),
    ("char_lm", dict(n_heads=3), "n_heads"),
    ("pinn", dict(equation="wave"), "equation"),
]


@pytest.mark.parametrize("name, options, option", BAD_OPTIONS)
def test_bad_option_values_name_the_option_and_value(name, options, option):
    with pytest.raises(ValueError) as err:
        get_task(name, **options)
    message = str(err.value)
    assert message.startswith(f"{name}: {option}")
    assert repr(options[option]) in message


def test_unknown_task_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown task 'quadratc'; did you mean 'quadratic'"):
        get_task("quadratc")
    with pytest.raises(ValueError, match="available: associative_memory, bigram_lm, char_lm"):
        get_task("nope")


def test_unknown_option_lists_valid_ones():
    with pytest.raises(TypeError, match=r"quadratic: unknown option\(s\) dimension; valid"):
        get_task("quadratic", dimension=3)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed must be an int"):
        get_task("quadratic").build(-1)
