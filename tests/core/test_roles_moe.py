"""Fine roles (router, gate, down, expert) on a tiny GPT with a dense SwiGLU block and two MoE blocks."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import optimlab
from optimlab.core.roles import FINE_ROLES, ROLES, assign_roles


class SwiGLU(nn.Module):
    def __init__(self, d: int, r: int):
        super().__init__()
        self.gate_proj = nn.Linear(d, r, bias=False)
        self.up_proj = nn.Linear(d, r, bias=False)
        self.down_proj = nn.Linear(r, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class PlainExpert(nn.Module):
    def __init__(self, d: int, r: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, r), nn.Linear(r, d)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class MoE(nn.Module):
    """Top-2 softmax routing (renormalised over the two), so the router has the shared-shift symmetry."""

    def __init__(self, d: int, r: int, n_experts: int, expert: type, router_name: str):
        super().__init__()
        self.router_name = router_name
        setattr(self, router_name, nn.Linear(d, n_experts, bias=False))
        self.experts = nn.ModuleList(expert(d, r) for _ in range(n_experts))

    def forward(self, x):
        probs = F.softmax(getattr(self, self.router_name)(x), dim=-1)
        w, idx = probs.topk(2, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):  # dense evaluation: tiny model, simple code
            gate = (w * (idx == e)).sum(-1, keepdim=True)
            out = out + gate * expert(x)
        return out


class Block(nn.Module):
    def __init__(self, d: int, mlp: nn.Module):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = mlp

    def forward(self, x):
        h = self.ln1(x)
        mask = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyMoEGPT(nn.Module):
    """Block 0: dense SwiGLU; block 1: OLMoE-style MoE (router named ``gate``, SwiGLU experts);
    block 2: gpt-oss-style MoE (router named ``router``, plain-MLP experts)."""

    def __init__(self, vocab: int = 13, d: int = 16, r: int = 24, ctx: int = 8, n_experts: int = 4):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, SwiGLU(d, r)), Block(d, MoE(d, r, n_experts, SwiGLU, "gate")),
                                     Block(d, MoE(d, r, n_experts, PlainExpert, "router"))])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def test_fine_roles_on_a_moe_swiglu_gpt():
    a = assign_roles(TinyMoEGPT(), fine=True)
    r = a.roles
    assert r["tok_emb.weight"] == r["pos_emb.weight"] == "embedding" and r["lm_head.weight"] == "head"
    assert r["blocks.0.mlp.gate_proj.weight"] == r["blocks.0.mlp.up_proj.weight"] == "gate"
    assert r["blocks.0.mlp.down_proj.weight"] == "down"
    assert r["blocks.1.mlp.gate.weight"] == "router" and r["blocks.2.mlp.router.weight"] == "router"
    for e in range(4):
        assert r[f"blocks.1.mlp.experts.{e}.gate_proj.weight"] == "gate"
        assert r[f"blocks.1.mlp.experts.{e}.down_proj.weight"] == "down"
        assert r[f"blocks.2.mlp.experts.{e}.fc1.weight"] == r[f"blocks.2.mlp.experts.{e}.fc2.weight"] == "expert"
        assert r[f"blocks.2.mlp.experts.{e}.fc1.bias"] == "vector"  # biases are never fine roles
    assert r["blocks.1.attn.in_proj_weight"] == r["blocks.1.attn.out_proj.weight"] == "matrix"
    assert r["blocks.0.ln1.weight"] == "vector"
    counts = {role: sum(v == role for v in r.values()) for role in ROLES}
    assert counts == {"matrix": 6, "embedding": 2, "head": 1, "vector": 28, "router": 2, "gate": 10, "down": 5,
                      "expert": 8}
    assert [g["role"] for g in a.groups()] == list(ROLES)
    assert "router" in a.summary()


def test_without_fine_the_coarse_roles_are_unchanged():
    r = assign_roles(TinyMoEGPT()).roles
    assert not set(r.values()) & set(FINE_ROLES)
    assert r["blocks.1.mlp.gate.weight"] == r["blocks.0.mlp.down_proj.weight"] == "matrix"
    assert r["lm_head.weight"] == "head"
    # and a recipe that does not know the fine roles routes them as before (Muon on the SwiGLU weights)
    opt = optimlab.create(TinyMoEGPT(), "muon")
    assert {g["role"] for g in opt.param_groups} == {"matrix", "embedding", "head", "vector"}


def test_explicit_globs_win_over_fine_rules():
    r = assign_roles(TinyMoEGPT(), fine=True, roles={"blocks.0.mlp.down_proj.weight": "matrix",
                                                     "blocks.*.attn.out_proj.weight": "gate"}).roles
    assert r["blocks.0.mlp.down_proj.weight"] == "matrix"
    assert r["blocks.2.attn.out_proj.weight"] == "gate"
    # explicit fine roles work without fine=True
    r = assign_roles(TinyMoEGPT(), roles={"*.router.weight": "router"}).roles
    assert r["blocks.2.mlp.router.weight"] == "router" and r["blocks.1.mlp.gate.weight"] == "matrix"


def test_router_inside_experts_is_ambiguous():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList([nn.ModuleDict({"router": nn.Linear(4, 2)})])
            self.out = nn.Linear(4, 4)

    with pytest.raises(ValueError, match=r"'experts.0.router.weight' .* named like a MoE router but sits inside"):
        assign_roles(Odd(), fine=True)
    assert assign_roles(Odd(), fine=True, roles={"experts.0.router.weight": "expert"}).roles[
        "experts.0.router.weight"] == "expert"


def test_gate_without_experts_is_not_a_router_and_auto_head_skips_fine_weights():
    class Gated(nn.Module):  # a gating layer that is not a MoE router, and a SwiGLU as the last Linear
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(4, 4)
            self.out = nn.Linear(4, 3)
            self.mlp = SwiGLU(3, 5)

    r = assign_roles(Gated(), fine=True).roles
    assert r["gate.weight"] == "matrix" and r["out.weight"] == "head"
    assert r["mlp.down_proj.weight"] == "down"
    assert assign_roles(Gated()).roles["mlp.down_proj.weight"] == "head"  # coarse: last nn.Linear


def test_raw_stacked_expert_tensors():
    class Experts(nn.Module):  # OLMoE's layout: gate_up (E, 2r, d), down (E, d, r); plus an unnamed one
        def __init__(self):
            super().__init__()
            self.gate_up_proj = nn.Parameter(torch.zeros(4, 10, 6))
            self.down_proj = nn.Parameter(torch.zeros(4, 6, 5))
            self.scales = nn.Parameter(torch.zeros(4, 6, 6))

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate, self.experts, self.head = nn.Linear(6, 4, bias=False), Experts(), nn.Linear(6, 2)

    r = assign_roles(Layer(), fine=True).roles
    assert r == {"gate.weight": "router", "experts.gate_up_proj": "gate", "experts.down_proj": "down",
                 "experts.scales": "expert", "head.weight": "head", "head.bias": "vector"}
    with pytest.raises(ValueError, match="no rule covers parameter 'experts.gate_up_proj'"):
        assign_roles(Layer())  # coarse rules do not know raw 3-D tensors


def test_fine_must_be_a_bool():
    with pytest.raises(TypeError, match="fine must be a bool"):
        assign_roles(TinyMoEGPT(), fine="yes")
