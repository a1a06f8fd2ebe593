"""The sliding-window Woodbury product equals the dense fp64 solve of the damped empirical Fisher."""

import pytest
import torch

from optimlab.linalg.woodbury import dense_fisher, fisher_inverse_product, ring_push, window_factor


@pytest.mark.parametrize("m,d,pushes", [(8, 300, 5), (8, 300, 21), (16, 64, 40)])
def test_ring_buffer_product_equals_dense_solve(m, d, pushes):
    g = torch.Generator().manual_seed(m + d + pushes)
    G = torch.zeros(m, d, dtype=torch.float64)
    gram = torch.zeros(m, m, dtype=torch.float64)
    last = []
    for t in range(pushes):
        v = torch.randn(d, generator=g, dtype=torch.float64) * (1 + t)
        ring_push(G, gram, t % m, v)
        last = (last + [v])[-m:]
    assert torch.allclose(gram, G @ G.T, rtol=1e-12, atol=0)  # the Gram is maintained exactly
    W = torch.stack(last)
    x = torch.randn(d, generator=g, dtype=torch.float64)
    for damp in (1e-3, 1e-1, 10.0):  # κ(F) up to ~1e7: the dense oracle itself is good to ~1e-9
        f = window_factor(gram, min(pushes, m), damp)
        got = fisher_inverse_product(G, f, x)
        F = damp * torch.eye(d, dtype=torch.float64) + W.T @ W / W.shape[0]
        want = torch.linalg.solve(F, x)
        assert torch.linalg.vector_norm(got - want) <= 1e-8 * torch.linalg.vector_norm(want)
        assert torch.allclose(dense_fisher(G, min(pushes, m), damp), F, rtol=1e-12, atol=1e-12)


def test_empty_window_is_gradient_over_damping_and_huge_gradients_stay_finite():
    G = torch.zeros(4, 10)
    gram = torch.zeros(4, 4, dtype=torch.float64)
    x = torch.ones(10)
    assert torch.equal(fisher_inverse_product(G, window_factor(gram, 0, 0.5), x), 2 * x.double())
    for t in range(6):  # rank-one, 3e38 rows: K ~ 1e78 in float64, mλ + max(Λ, 0) > 0
        ring_push(G, gram, t % 4, torch.full((10,), 3e38))
    out = fisher_inverse_product(G, window_factor(gram, 4, 1e-3), torch.full((10,), 3e38))
    assert torch.isfinite(out).all()
