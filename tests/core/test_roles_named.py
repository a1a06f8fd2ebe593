"""Routing without a module: named parameters match routing by module; bare tensors warn when it matters."""

import warnings

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core.roles import assign_roles
from optimlab.core.routing import assign_named, suspects
from models import CNN, TinyGPT, mlp
from test_roles_moe import TinyMoEGPT


class NanoBlock(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.ModuleDict({"c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d)})
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(d, 4 * d), "c_proj": nn.Linear(4 * d, d)})


class NanoGPT(nn.Module):
    """nanoGPT's parameter layout: transformer.{wte, wpe, h.N, ln_f} and an lm_head tied to wte."""

    def __init__(self, vocab: int = 50, ctx: int = 64, d: int = 16, n_layer: int = 2, tied: bool = True):
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(vocab, d), "wpe": nn.Embedding(ctx, d),
                                          "h": nn.ModuleList(NanoBlock(d) for _ in range(n_layer)),
                                          "ln_f": nn.LayerNorm(d)})
        self.lm_head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.transformer.wte.weight


def time_embedded():
    """A Linear stack inside a block named for embeddings (diffusion UNets' time_embed): no embedding."""
    return nn.ModuleDict({"time_embed": nn.Sequential(nn.Linear(4, 16), nn.SiLU(), nn.Linear(16, 16)),
                          "body": nn.Linear(16, 16), "out": nn.Linear(16, 3)})


MODELS = {"gpt": TinyGPT, "gpt_tied": lambda: TinyGPT(tied=True), "mlp": mlp, "cnn": CNN,
          "nanogpt_tied": NanoGPT, "nanogpt_untied": lambda: NanoGPT(tied=False), "time_embed": time_embedded}


@pytest.mark.parametrize("name", MODELS)
def test_named_parameters_route_as_the_model(name):
    model = MODELS[name]()
    by_module, by_name = assign_roles(model), assign_named(model.named_parameters())
    assert by_name.roles == by_module.roles
    assert by_name.blocks == by_module.blocks
    assert "head" in by_module.roles.values() or "tied" in name
    # and through create(): the same groups, in the same order, with the same names
    a, b = optimlab.create(model, "muon"), optimlab.create(model.named_parameters(), "muon")
    assert [(g["role"], g["param_names"], g.get("ortho_blocks")) for g in a.param_groups] == \
        [(g["role"], g["param_names"], g.get("ortho_blocks")) for g in b.param_groups]


def test_nanogpt_tied_has_no_head_and_positional_rows_are_not_the_vocabulary():
    # ctx = 64 = 4·d: the c_fc weights have as many rows as wpe; they must not become the head
    r = assign_named(NanoGPT().named_parameters()).roles
    assert r["transformer.wte.weight"] == r["transformer.wpe.weight"] == "embedding"
    assert "head" not in r.values()
    assert r["transformer.h.1.mlp.c_fc.weight"] == r["transformer.h.1.mlp.c_proj.weight"] == "matrix"


def test_tie_visible_with_remove_duplicate_false():
    a = assign_named(TinyGPT(tied=True).named_parameters(remove_duplicate=False))
    assert a.roles["tok_emb.weight"] == "embedding" and "lm_head.weight" not in a.roles
    assert a.ties["tok_emb.weight"] == ["lm_head.weight"] and "tied" in a.why["tok_emb.weight"]
    assert "head" not in a.roles.values()


def test_fine_roles_from_names_match_the_module():
    model = TinyMoEGPT()
    assert assign_named(model.named_parameters(), fine=True).roles == assign_roles(model, fine=True).roles
    opt = optimlab.create(model.named_parameters(), "symmetry_muon")
    assert {"router", "gate", "down", "expert"} <= {g["role"] for g in opt.param_groups}


def test_explicit_rules_with_named_parameters():
    named = list(TinyGPT().named_parameters())
    r = assign_named(named, head="blocks.1.fc", roles={"blocks.*.proj.weight": "vector"}).roles
    assert r["blocks.1.fc.weight"] == "head" and r["lm_head.weight"] == "matrix"
    assert r["blocks.0.proj.weight"] == r["blocks.1.proj.weight"] == "vector"
    assert "head" not in assign_named(named, head=None).roles.values()
    r = assign_named(named, embedding=["lm_head"]).roles
    assert r["lm_head.weight"] == "embedding"
    opt = optimlab.create(named, "muon", head="lm_head.weight", embedding="pos_emb", verbose=False)
    by_role = {g["role"]: g["param_names"] for g in opt.param_groups}
    assert by_role["head"] == ["lm_head.weight"] and "pos_emb.weight" in by_role["embedding"]


def test_param_groups_with_names_keep_their_hyperparameters():
    model = NanoGPT(tied=False)
    decay = [(n, p) for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [(n, p) for n, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": [p for _, p in decay], "param_names": [n for n, _ in decay], "weight_decay": 0.1},
              {"params": [p for _, p in no_decay], "param_names": [n for n, _ in no_decay], "weight_decay": 0.0}]
    opt = optimlab.create(groups, "muon")
    got = {n: (g["role"], g["weight_decay"]) for g in opt.param_groups for n in g["param_names"]}
    want = assign_roles(model).roles
    assert {n: r for n, (r, _) in got.items()} == want
    assert got["lm_head.weight"] == ("head", 0.1) and got["transformer.ln_f.weight"] == ("vector", 0.0)


def _routing_warnings(params, name="muon"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimlab.create(params, name)
    return [w for w in caught if issubclass(w.category, optimlab.RoleWarning)]


class VocabLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1000, 16)
        self.body = mlp(16, 32, 16)


def test_warning_once_for_bare_tensors_with_a_vocab_sized_embedding():
    caught = _routing_warnings(list(VocabLM().parameters()))
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "tensor #0 (shape (1000, 16))" in msg and "'matrix' role" in msg
    assert "optimlab.create(model, ...)" in msg and "named_parameters()" in msg
    # an untied small-vocabulary LM: embedding and head, first and last, one warning naming both
    params = list(TinyGPT().parameters())
    caught = _routing_warnings(params)
    assert len(caught) == 1 and "tensor #0 (shape (11, 16))" in str(caught[0].message)
    assert f"tensor #{len(params) - 1} (shape (11, 16))" in str(caught[0].message)
    assert optimlab.RoleWarning.__mro__[1] is UserWarning


@pytest.mark.parametrize("params,name", [
    (lambda: list(mlp().parameters()), "muon"),                              # plain MLP: no suspect
    (lambda: list(mlp(2, 256, 1).parameters()), "muon"),                     # tiny input, wide layer
    (lambda: list(CNN().parameters()), "muon"),                              # a classifier's head is wide, not tall
    (lambda: list(VocabLM().parameters()), "adamw"),                         # routing does not change the update
    (lambda: VocabLM().named_parameters(), "muon"),                          # names decide
    (lambda: VocabLM(), "muon"),                                             # the module decides
])
def test_no_warning_when_roles_are_clear_or_do_not_matter(params, name):
    assert _routing_warnings(params(), name) == []


def test_suspects_rule():
    t = lambda *s: torch.zeros(*s)  # noqa: E731
    assert suspects([t(1000, 16), t(64, 16), t(16, 64)]) == [(0, "(shape (1000, 16)): 1000 rows, far more than "
                                                                "any other matrix dimension")]
    assert suspects([t(1000, 16)]) == []                                   # nothing to compare with
    assert suspects([t(50, 16), t(16, 16), t(16, 16), t(50, 16)])[0][0] == 0
    assert suspects([t(16, 16), t(16, 16), t(16, 16)]) == []               # square and shared: an MLP
