"""psgd_kron_hvp on a small transformer: several buckets, each HVP taken at the step's starting point.

Regression: the HVPs were taken inside each bucket's ``update``, after earlier buckets had written their
parameters in place; the double backward through the closure's graph (which saved those parameters) then
failed with autograd's "modified by an inplace operation". They are taken in the engine's pre-pass now.
"""

import torch
from torch import nn

import optimlab
from optimlab.transforms.psgd import PSGDKron

VOCAB, CONTEXT, D = 11, 6, 8


class TinyTransformer(nn.Module):
    """Embedding, one attention layer (q, k, v, o: same-shape matrices), LayerNorm, an MLP, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, D)
        self.pos = nn.Embedding(CONTEXT, D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.fc, self.proj = nn.Linear(D, 2 * D), nn.Linear(2 * D, D)
        self.head = nn.Linear(D, VOCAB, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx) + self.pos(torch.arange(idx.shape[1]))
        h = self.ln1(x)
        att = self.q(h) @ self.k(h).mT / D**0.5
        mask = torch.ones(idx.shape[1], idx.shape[1], dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + self.o(att @ self.v(h))
        x = x + self.proj(torch.tanh(self.fc(self.ln2(x))))
        return self.head(x)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyTransformer().double()
    g = torch.Generator().manual_seed(seed + 1)
    data = torch.randint(0, VOCAB, (4, CONTEXT + 1), generator=g)
    return model, data[:, :-1], data[:, 1:]


def _loss(model, x, y):
    return nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))


def _closure(opt, model, x, y):
    def closure():
        opt.zero_grad()
        loss = _loss(model, x, y)
        loss.backward(create_graph=True)
        return loss
    return closure


def test_trains_a_small_transformer_over_several_steps():
    model, x, y = _setup()
    opt = optimlab.create(model, "psgd_kron_hvp", lr=0.02)
    first = _loss(model, x, y).item()
    for _ in range(6):
        opt.step(_closure(opt, model, x, y))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert _loss(model, x, y).item() < first  # it trains (6 steps on one batch)
    fitted = [p for p in model.parameters() if "psgd_kron_hvp.Q_L" in opt.state[p]]
    assert len({tuple(p.shape) for p in fitted}) >= 3  # several same-shape buckets of matrices


def test_every_hvp_is_taken_at_the_steps_starting_point(monkeypatch):
    """The pairs ``(v, H v)`` each bucket fits on equal an independent double backward at the parameters the
    step started from (the old per-bucket products either failed or saw moved parameters)."""
    model, x, y = _setup()
    opt = optimlab.create(model, "psgd_kron_hvp", lr=0.02)
    for _ in range(2):  # move away from the initialisation first (AdamW and PSGD state in place)
        opt.step(_closure(opt, model, x, y))
    seen = []
    orig = PSGDKron._hvps

    def record(self, b, fit, V):
        H = orig(self, b, fit, V)
        seen.append(([b.params[i] for i in fit], V.clone(), H.clone()))
        return H

    monkeypatch.setattr(PSGDKron, "_hvps", record)
    params = [p for p in model.parameters()]
    start = [p.detach().clone() for p in params]
    opt.step(_closure(opt, model, x, y))
    assert len(seen) >= 3  # several buckets, each taking its products while the others step

    twin, _, _ = _setup()
    with torch.no_grad():
        for q, s in zip(twin.parameters(), start):
            q.copy_(s)
    tparams = list(twin.parameters())
    index = {id(p): i for i, p in enumerate(params)}
    grads = torch.autograd.grad(_loss(twin, x, y), tparams, create_graph=True)
    for ps, V, H in seen:
        vecs = [torch.zeros_like(p) for p in tparams]
        for p, v in zip(ps, V):
            vecs[index[id(p)]] = v.reshape(p.shape)
        hv = torch.autograd.grad(grads, tparams, grad_outputs=vecs, retain_graph=True)
        want = torch.stack([hv[index[id(p)]].reshape(p.shape[0], -1) for p in ps])
        torch.testing.assert_close(H, want, rtol=1e-10, atol=1e-12)


def test_steps_without_a_fit_match_the_whitening_variant():
    """The pre-pass changes nothing else in the step: with a fit probability of 1e-9 (no fit is drawn),
    psgd_kron_hvp steps bit-identically to psgd_kron (the same momentum, factors and update)."""
    steps = 3
    runs = []
    for name in ("psgd_kron", "psgd_kron_hvp"):
        model, x, y = _setup()
        opt = optimlab.create(model, name, lr=0.02, update_prob_max=1e-9, update_prob_min=0.0)
        for _ in range(steps):
            opt.step(_closure(opt, model, x, y))
        runs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*runs):
        assert torch.equal(a, b)
