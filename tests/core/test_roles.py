"""Role routing on real model shapes, and its errors."""

import pytest
import torch
from torch import nn

import optimlab
from optimlab.core.roles import assign_roles, groups_from_params
from models import CNN, TinyGPT, mlp


def roles_of(model, **kw):
    return assign_roles(model, **kw).roles


def test_gpt_untied():
    r = roles_of(TinyGPT())
    assert r["tok_emb.weight"] == "embedding" and r["pos_emb.weight"] == "embedding"
    assert r["lm_head.weight"] == "head"
    assert r["blocks.0.attn.in_proj_weight"] == "matrix"
    assert r["blocks.0.attn.out_proj.weight"] == "matrix"
    assert r["blocks.1.fc.weight"] == "matrix" and r["blocks.1.proj.weight"] == "matrix"
    assert r["blocks.0.ln1.weight"] == "vector" and r["blocks.0.fc.bias"] == "vector"
    assert sum(v == "head" for v in r.values()) == 1


def test_gpt_tied_head_is_an_embedding_once():
    a = assign_roles(TinyGPT(tied=True))
    assert "lm_head.weight" not in a.roles  # one parameter, one name
    assert a.roles["tok_emb.weight"] == "embedding"
    assert "tied" in a.why["tok_emb.weight"]
    assert a.ties["tok_emb.weight"] == ["lm_head.weight"]
    assert "head" not in a.roles.values()
    # the fc layers (out_features 64 != vocab) are never mistaken for a head
    assert a.roles["blocks.1.fc.weight"] == "matrix"


def test_mlp_last_linear_is_head():
    r = roles_of(mlp())
    assert r == {"0.weight": "matrix", "0.bias": "vector", "2.weight": "matrix", "2.bias": "vector",
                 "4.weight": "head", "4.bias": "vector"}


def test_cnn_conv_kernels_are_matrices():
    r = roles_of(CNN())
    assert r["conv1.weight"] == "matrix" and r["conv2.weight"] == "matrix"
    assert r["bn.weight"] == "vector" and r["fc.weight"] == "head"


def test_explicit_head_and_none():
    r = roles_of(mlp(), head="2")
    assert r["2.weight"] == "head" and r["4.weight"] == "matrix"
    r = roles_of(mlp(), head=None)
    assert "head" not in r.values()
    r = roles_of(TinyGPT(), head="lm_head.weight")
    assert r["lm_head.weight"] == "head"


def test_explicit_roles_glob():
    r = roles_of(TinyGPT(), roles={"blocks.*.fc.weight": "vector"})
    assert r["blocks.0.fc.weight"] == "vector" and r["blocks.1.fc.weight"] == "vector"


def test_uncovered_parameter_is_named():
    class Raw(nn.Module):
        def __init__(self):
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(4, 8))
            self.fc = nn.Linear(8, 2)

    with pytest.raises(ValueError, match=r"no rule covers parameter 'pos' \(shape \(4, 8\)"):
        assign_roles(Raw())
    assert roles_of(Raw(), roles={"pos": "embedding"})["pos"] == "embedding"


def test_two_rules_conflict_is_named():
    with pytest.raises(ValueError, match=r"'tok_emb.weight' is covered by two rules"):
        assign_roles(TinyGPT(), head="tok_emb", embedding="tok_emb")
    with pytest.raises(ValueError, match="covered by two rules"):
        assign_roles(mlp(), roles={"0.*": "matrix", "0.weight": "vector"})


def test_unknown_names_and_roles():
    with pytest.raises(ValueError, match=r"head='nope' names no module"):
        assign_roles(mlp(), head="nope")
    with pytest.raises(ValueError, match=r"must be one of .* got 'hidden'"):
        assign_roles(mlp(), roles={"0.weight": "hidden"})


def test_frozen_parameters_skipped():
    m = mlp()
    m[0].weight.requires_grad_(False)
    a = assign_roles(m)
    assert "0.weight" not in a.roles and a.frozen == 1


def test_summary_table():
    a = assign_roles(TinyGPT())
    text = a.summary({"matrix": "momentum → orthogonalize"})
    assert text.splitlines()[0].split() == ["role", "params", "numel", "chain"]
    matrix_row = next(line for line in text.splitlines() if line.startswith("matrix"))
    n_matrix = sum(p.numel() for n, p in a.params.items() if a.roles[n] == "matrix")
    assert f"{n_matrix:,}" in matrix_row and "orthogonalize" in matrix_row
    assert "lm_head.weight" in text


def test_plain_tensors_and_user_groups():
    w, b = torch.zeros(3, 4, requires_grad=True), torch.zeros(3, requires_grad=True)
    groups = groups_from_params([w, b])
    assert [(g["role"], len(g["params"])) for g in groups] == [("matrix", 1), ("vector", 1)]
    # user groups win: their hyperparameters are kept, an explicit role is honoured
    opt = optimlab.create([{"params": [w, b], "lr": 0.5}, {"params": [torch.zeros(2, 2, requires_grad=True)],
                                                          "role": "vector", "lr": 0.1}], "adamw")
    assert [(g["role"], g["lr"]) for g in opt.param_groups] == [("matrix", 0.5), ("vector", 0.5), ("vector", 0.1)]


def test_muon_routes_by_role():
    model = TinyGPT()
    opt = optimlab.create(model, "muon", lr=0.03, per_role={"embedding": {"lr": 1e-3}})
    by_role = {g["role"]: g for g in opt.param_groups}
    assert set(by_role) == {"matrix", "embedding", "head", "vector"}
    assert by_role["matrix"]["lr"] == 0.03 and "ns_steps" in by_role["matrix"]
    assert by_role["embedding"]["lr"] == 1e-3 and "ns_steps" not in by_role["embedding"]
    assert by_role["head"]["lr"] == 3e-4 and by_role["head"]["betas"] == (0.9, 0.95)
    assert by_role["head"]["param_names"] == ["lm_head.weight"]


def test_verbose_prints_table(capsys):
    optimlab.create(CNN(), "muon", verbose=True)
    out = capsys.readouterr().out
    assert "orthogonalize" in out and "fc.weight" in out
