"""Hypergradient estimators against closed forms and the exact dense IFT hypergradient on tiny problems."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from optimlab.bilevel import F2SA, dense_hypergradient, ift_hypergradient, inner_gd, unrolled_hypergradient, write_hypergrad

D = torch.float64


def quad_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(4, 4, generator=g, dtype=D)
    A = Q @ Q.T + 0.5 * torch.eye(4, dtype=D)
    B = torch.randn(4, 3, generator=g, dtype=D)
    t = torch.randn(4, generator=g, dtype=D)
    x = torch.randn(3, generator=g, dtype=D)
    y0 = torch.randn(4, generator=g, dtype=D)

    def inner(xs, ys):
        y = ys[0]
        return 0.5 * y @ A @ y - y @ B @ xs[0]

    def outer(xs, ys):
        return 0.5 * ((ys[0] - t) ** 2).sum() + 0.1 * (xs[0] ** 2).sum()

    return A, B, t, x, y0, inner, outer


def cos(a, b):
    a, b = torch.cat([t.reshape(-1) for t in a]), torch.cat([t.reshape(-1) for t in b])
    return float(a @ b / (a.norm() * b.norm()))


def test_dense_matches_closed_form():
    A, B, t, x, y0, inner, outer = quad_problem()
    S = torch.linalg.solve(A, B)
    want = 0.2 * x + S.T @ (S @ x - t)
    got = dense_hypergradient(inner, outer, [x], [S @ x])[0]
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("K", [None, 1, 5])
def test_unrolled_and_truncated_match_the_closed_form_of_the_unrolled_map(K):
    A, B, t, x, y0, inner, outer = quad_problem(1)
    T, lr = 12, 0.05
    M = torch.eye(4, dtype=D) - lr * A
    yT = torch.linalg.matrix_power(M, T) @ y0 + sum(lr * torch.linalg.matrix_power(M, k) @ B for k in range(T)) @ x
    Kk = T if K is None else K
    dyT = sum(lr * torch.linalg.matrix_power(M, k) @ B for k in range(Kk))
    want = 0.2 * x + dyT.T @ (yT - t)
    hg, y = unrolled_hypergradient(inner, outer, [x], [y0], steps=T, lr=lr, truncate=K)
    torch.testing.assert_close(y[0], yT, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hg[0], want, rtol=1e-10, atol=1e-12)


def test_ift_neumann_converges_to_dense():
    A, B, t, x, y0, inner, outer = quad_problem(2)
    ystar = torch.linalg.solve(A, B @ x)
    exact = dense_hypergradient(inner, outer, [x], [ystar])
    alpha = 1.0 / float(torch.linalg.eigvalsh(A).max())
    few = ift_hypergradient(inner, outer, [x], [ystar], terms=2, alpha=alpha)
    many = ift_hypergradient(inner, outer, [x], [ystar], terms=400, alpha=alpha)
    assert cos(many, exact) >= 0.999
    torch.testing.assert_close(many[0], exact[0], rtol=1e-6, atol=1e-8)
    assert (few[0] - exact[0]).norm() > (many[0] - exact[0]).norm()


def test_ift_on_per_weight_l2_logistic_regression():
    g = torch.Generator().manual_seed(0)
    Xt, Xv = torch.randn(40, 5, generator=g, dtype=D), torch.randn(30, 5, generator=g, dtype=D)
    w_true = torch.randn(5, 3, generator=g, dtype=D)
    yt, yv = (Xt @ w_true).argmax(1), (Xv @ w_true).argmax(1)
    x = [torch.full((5, 3), -2.0, dtype=D)]

    def inner(xs, ys):
        return F.cross_entropy(Xt @ ys[0], yt) + 0.5 * (xs[0].exp() * ys[0] ** 2).sum()

    def outer(xs, ys):
        return F.cross_entropy(Xv @ ys[0], yv)

    y = inner_gd(inner, x, [torch.zeros(5, 3, dtype=D)], steps=3000, lr=0.5)
    exact = dense_hypergradient(inner, outer, x, y)
    approx = ift_hypergradient(inner, outer, x, y, terms=300, alpha=0.5)
    assert cos(approx, exact) >= 0.999
    # the full unroll from the same start approaches the same hypergradient when the inner problem is solved
    unrolled, _ = unrolled_hypergradient(inner, outer, x, [torch.zeros(5, 3, dtype=D)], steps=400, lr=0.5)
    assert cos(unrolled, exact) >= 0.99


def test_f2sa_approaches_the_exact_hypergradient_and_resumes():
    A, B, t, x, y0, inner, outer = quad_problem(3)
    ystar = torch.linalg.solve(A, B @ x)
    exact = dense_hypergradient(inner, outer, [x], [ystar])
    lr = 0.5 / float(torch.linalg.eigvalsh(A).max())
    f2 = F2SA(inner, outer, [y0], lr=lr, inner_steps=400, lam0=1000.0, lam_growth=0.0, lam_max=1000.0)
    est = f2.hypergradient([x])
    assert cos(est, exact) >= 0.999
    other = F2SA(inner, outer, [y0], lr=lr, inner_steps=400, lam0=1000.0, lam_growth=0.0, lam_max=1000.0)
    other.load_state_dict(f2.state_dict())
    a, b = f2.hypergradient([x]), other.hypergradient([x])
    assert torch.equal(a[0], b[0])
    with pytest.raises(ValueError, match="saved 'y' must be 1 finite tensors"):
        other.load_state_dict({"steps": 1, "y": [torch.zeros(5, dtype=D)], "z": [torch.zeros(4, dtype=D)]})


def test_write_hypergrad_lets_any_optimizer_step():
    import optimlab

    A, B, t, x, y0, inner, outer = quad_problem(4)
    xp = torch.nn.Parameter(x.clone())
    opt = optimlab.create([xp], "sgd", lr=0.1)
    ystar = torch.linalg.solve(A, B @ x)
    hg = dense_hypergradient(inner, outer, [xp], [ystar])
    write_hypergrad([xp], hg)
    opt.step()
    torch.testing.assert_close(xp.detach(), x - 0.1 * hg[0])


def test_bad_input_names_the_problem():
    A, B, t, x, y0, inner, outer = quad_problem()
    with pytest.raises(ValueError, match="outer parameter list is empty"):
        ift_hypergradient(inner, outer, [], [y0])
    with pytest.raises(ValueError, match="outer loss must return a scalar"):
        ift_hypergradient(inner, lambda xs, ys: ys[0] * 2, [x], [y0])
    with pytest.raises(ValueError, match="inner loss does not depend on parameter 1"):
        unrolled_hypergradient(inner, outer, [x], [y0, torch.zeros(2, dtype=D)], steps=3, lr=0.1)
    with pytest.raises(ValueError, match=r"truncate must be an int in \[1, steps=3\]"):
        unrolled_hypergradient(inner, outer, [x], [y0], steps=3, lr=0.1, truncate=5)
    with pytest.raises(ValueError, match="inner Hessian is singular"):
        dense_hypergradient(lambda xs, ys: (ys[0][:2] ** 2).sum() - ys[0] @ B @ xs[0], outer, [x], [y0])
    with pytest.raises(ValueError, match="lr must be > 0"):
        F2SA(inner, outer, [y0], lr=0.0)
