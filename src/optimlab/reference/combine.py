"""Gradient combiners transcribed literally on lists of per-loss gradient vectors (numpy float64): test oracles.

Each function takes the gradients as a list of 1-D arrays (one per loss) and returns the combined
direction; stateful ones take and update a plain dict. The UPGrad oracle solves each projection in the
*primal* (min ½‖x − g_i‖² s.t. ⟨g_j, x⟩ ≥ 0 for all j) with SciPy's SLSQP — a different formulation and
solver from the library's dual NNLS.
"""
from __future__ import annotations

import numpy as np

__all__ = ["sum_ref", "pcgrad_ref", "bloop_ref", "odice_ref", "primal_dual_ref", "upgrad_ref", "orthogonal_projection_ref"]


def sum_ref(grads):
    out = np.zeros_like(grads[0])
    for g in grads:
        out = out + g
    return out


def pcgrad_ref(grads, orders):
    """orders[i]: the other indices in the order g_i is projected against them."""
    projected = []
    for i, g in enumerate(grads):
        gi = g.copy()
        for j in orders[i]:
            gj = grads[j]
            dot = float(np.dot(gi, gj))
            if dot < 0 and np.dot(gj, gj) > 0:
                gi = gi - dot / float(np.dot(gj, gj)) * gj
        projected.append(gi)
    return sum_ref(projected)


def bloop_ref(g_train, g_aux, state, lam, rho):
    if "ema" not in state:
        state["ema"] = g_train.copy()
    else:
        state["ema"] = (1 - rho) * state["ema"] + rho * g_train
    e = state["ema"]
    if np.dot(e, e) > 0:
        aux = g_aux - np.dot(g_aux, e) / np.dot(e, e) * e
    else:
        aux = g_aux
    return g_train + lam * aux


def odice_ref(g_fwd, g_bwd, eta):
    if np.dot(g_fwd, g_fwd) > 0:
        orth = g_bwd - np.dot(g_bwd, g_fwd) / np.dot(g_fwd, g_fwd) * g_fwd
    else:
        orth = g_bwd
    return g_fwd + eta * orth


def primal_dual_ref(grads, values, state, levels, dual_lr):
    mu = state.setdefault("mu", [0.0] * len(levels))
    d = grads[0].copy()
    for k in range(len(levels)):
        d = d + mu[k] * grads[k + 1]
    state["mu"] = [max(0.0, mu[k] + dual_lr * (values[k + 1] - levels[k])) for k in range(len(levels))]
    return d


def upgrad_ref(grads, pref=None):
    from scipy.optimize import minimize

    m = len(grads)
    J = np.stack(grads)
    pref = [1.0 / m] * m if pref is None else pref
    d = np.zeros_like(grads[0])
    for i in range(m):
        g = grads[i]
        res = minimize(lambda x, g=g: 0.5 * np.dot(x - g, x - g), g.copy(), jac=lambda x, g=g: x - g,
                       constraints=[{"type": "ineq", "fun": lambda x: J @ x, "jac": lambda x: J}],
                       method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
        d = d + pref[i] * res.x
    return d


def orthogonal_projection_ref(basis_vectors, g, tol=1e-6):
    """Gram–Schmidt the stored vectors one by one (re-orthogonalised twice), then g − Σ ⟨g, q⟩ q."""
    qs = []
    for v in basis_vectors:
        r = v.copy()
        for _ in range(2):
            for q in qs:
                r = r - np.dot(r, q) * q
        if np.linalg.norm(r) > tol * np.linalg.norm(v):
            qs.append(r / np.linalg.norm(r))
    out = g.copy()
    for q in qs:
        out = out - np.dot(g, q) * q
    return out
