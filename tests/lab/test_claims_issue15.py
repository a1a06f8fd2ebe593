"""Deterministic pieces of issue 15's claims (the fast protocols run in test_claims.py)."""
from __future__ import annotations

import math

import numpy as np
import torch

from optimlab.lab.claims import get_claim


def test_arxiv_fields_are_filled():
    for cid, arxiv in (("zo-stability-boundary", "2604.14669"), ("muon-associative-memory", "2603.26554"),
                       ("kaon-matches-muon", "2605.11181"), ("muoneq-r-vs-muon", "2603.28254")):
        assert get_claim(cid).arxiv == arxiv


def test_ns_error_is_small_for_an_orthogonal_matrix_and_large_when_ill_conditioned():
    from optimlab.lab.claims.orthogonalization import _ns_error

    q = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(0)))[0]
    assert _ns_error(q[:32]) < 0.05  # orthonormal rows: NS5 lands near the polar factor
    bad = q[:32] * torch.logspace(0, -4, 32)[:, None]
    assert _ns_error(bad) > 0.3  # singular values down to 1e-4 of the top are not lifted in 5 steps
    assert _ns_error(bad / bad.norm(dim=1, keepdim=True)) < 0.05  # row equilibration undoes the row scales


def test_first_rank_step_and_linear_fit():
    from optimlab.lab.claims.saddles import _first, _linfit

    assert _first([0, 0, 1, 1, 2], 1) == 2 and _first([0, 0, 1, 1, 2], 2) == 4
    assert _first([0, 1], 3) == math.inf
    x = np.arange(10.0)
    slope, r2 = _linfit(x, 3.0 - 0.5 * x)
    assert abs(slope + 0.5) < 1e-12 and abs(r2 - 1.0) < 1e-12


def test_exact_parameterization_converges_linearly_to_machine_precision():
    from optimlab.lab.claims.saddles import _sensing_errors

    e = _sensing_errors(3, "symmetric", 1e-3, 600, seed=0)
    assert e[0] > 0.9 and e[-1] < 1e-12  # float64 truth and observations: no float32 floor


def test_mixture_means_are_orthogonal_and_labels_balanced():
    from optimlab.lab.claims.hessian_subspace import CLASSES, _mixture

    x, y = _mixture(50, 4000, seed=0)
    means = torch.stack([x[y == c].mean(0) for c in range(CLASSES)])
    gram = means @ means.T
    assert torch.allclose(gram.diagonal(), torch.full((CLASSES,), 9.0), atol=1.0)
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 1.0


def test_teacher_trace_matches_autograd_hessian():
    from optimlab.lab.claims.implicit_bias import D, _diag_problem, _teacher_trace

    x, y, w_star = _diag_problem(seed=0)

    def loss(p):
        u, v = p[:D], p[D:]
        return 0.5 * (x @ (u * u - v * v) - y).pow(2).mean()

    p = torch.cat([w_star.clamp(min=0).sqrt(), (-w_star).clamp(min=0).sqrt()])
    h = torch.autograd.functional.hessian(loss, p)
    assert abs(float(h.diagonal().sum()) - _teacher_trace(x, w_star)) < 1e-9 * _teacher_trace(x, w_star)


def test_bigram_chain_excess_loss_is_zero_at_the_true_logits_and_positive_at_zero():
    from optimlab.lab.claims.schedules_batch import VOCAB, _Chain

    chain = _Chain(seed=0)
    assert abs(float(chain.pi.sum()) - 1) < 1e-9
    assert torch.allclose(chain.pi @ chain.p, chain.pi, atol=1e-9)  # stationary
    assert abs(chain.excess(chain.p.clamp(min=1e-300).log())) < 1e-9
    assert chain.excess(torch.zeros(VOCAB, VOCAB)) > 0.5
    x, y = chain.batch()
    assert x.shape == y.shape == (32,)


def test_run_all_writes_one_html_page(tmp_path, monkeypatch):
    from optimlab.lab.claims import __main__ as cli
    from optimlab.lab.claims.base import Evidence

    def fake(claim_id, fast, out_dir, seeds):
        return Evidence(claim_id, "holds" if claim_id.startswith("m") else "does not hold", "m <b>", "e", fast,
                        [0, 1], figure_path=None)

    monkeypatch.setattr(cli, "run_claim", fake)
    assert cli.main(["run", "muon-assoc-multistep", "wsd-decay-drop", "--fast", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text()
    assert page.count("<tr style") == 2 and "does not hold" in page and "m &lt;b&gt;" in page
    assert 'id="wsd-decay-drop"' in page and "2410.05192" in page


def test_poisson_sine_features_condition_numbers():
    from optimlab.lab.claims.pinn_conditioning import _problem, _steps

    kappa_plain, steps_plain = _steps(*_problem(4, False, seed=0))
    kappa_pre, steps_pre = _steps(*_problem(4, True, seed=0))
    assert abs(kappa_plain - 4 ** 4) < 1e-6 * 256  # (jπ)^4 spread: κ = (K/1)^4 on orthogonal sines
    assert abs(kappa_pre - 1.0) < 1e-9 and steps_pre == 1.0  # preconditioned: one GD step at 1/λ_max
    assert steps_plain > 100


def test_adadagrad_batches_never_shrink_and_gradient_falls():
    from optimlab.lab.claims.batch_size import _ada_seed, _digits

    x, y = _digits()
    gnorms, batches = _ada_seed(40, 0, x.double(), y)
    assert batches[0] == 8 and all(a <= b for a, b in zip(batches, batches[1:]))
    assert min(gnorms) < 0.5 * gnorms[0]


def test_max_lr_bisection_brackets_a_threshold():
    from optimlab.lab.claims import batch_size

    calls = []

    def fake(state, name, lr, batch, steps, seed, x, y):
        calls.append(lr)
        return lr < 0.3

    orig = batch_size._stable
    batch_size._stable = fake
    try:
        lr = batch_size._max_lr(None, "sgd", 8, {"halvings": 20, "steps": 1}, 0, None, None)
    finally:
        batch_size._stable = orig
    assert 0.29 < lr < 0.3 and len(calls) == 20


def test_proxy_grids_are_centred_on_each_optimizers_default_lr():
    from optimlab.lab.claims.proxies import FULL, default_lr

    assert default_lr("muon") == 0.02 and default_lr("lion") == 1e-4 and default_lr("adamw") == 1e-3
    assert FULL["factors"][len(FULL["factors"]) // 2] == 1.0  # the default sits mid-grid, not at an edge
