"""The energy monitor of regularized Muon: ``H = f(W) + Σ_matrices (lr·s/(1−β))·tr((MᵀM + εI)^{1/2})``.

A reading, not the paper's text (which we have not seen): regularized Muon steps ``W`` along ``−s·∇K(M)`` with
the kinetic energy ``K(M) = tr((MᵀM + εI)^{1/2})`` (a smoothed nuclear norm of the momentum), and ``M`` relaxes
towards the gradient, ``M ← β M + (1−β) G``. In continuous time (``t = lr·steps``, ``c = (1−β)/lr``):
``dW/dt = −s ∇K(M)``, ``dM/dt = c (G − M)``, hence

    d/dt [f(W) + (s/c) K(M)] = −s ⟨∇K(M), M⟩ = −s Σ_i σ_i² / √(σ_i² + ε) ≤ 0:

``H`` is a Lyapunov function of the flow (a dissipative Hamiltonian system), and decreases along the discrete
iterates up to O(lr²) per step. It holds for plain momentum (``nesterov=False``) and no weight decay; this
monitor refuses other settings rather than report a number that is not an energy. ``K`` uses the Gram matrix
of the smaller side (it differs from the larger side's trace by the constant ``|m − n|·√ε``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..transforms import ScaleByShape
from ..transforms.orthogonalize import stack_matrices
from ..transforms.regularized_polar import RegularizedPolar, smoothed_nuclear_norm

__all__ = ["kinetic_energy", "hamiltonian_energy"]


def kinetic_energy(M: Tensor, eps: float) -> Tensor:
    """``K(M) = tr((MᵀM + εI)^{1/2})`` over the smaller side, for one matrix or a batch (summed)."""
    return smoothed_nuclear_norm(M, eps).sum()


def hamiltonian_energy(optimizer: Any, loss: float | Tensor) -> float:
    """``loss + Σ (lr·s/(1−β))·K(M)`` over the parameters of every param group whose chain has the
    regularized polar map (``regularized_muon``'s matrix role), ``M`` their momentum buffers.

    ``loss`` is ``f`` at the current parameters. Call it between steps; a parameter not yet stepped has zero
    momentum (``K(0) = min(m, n)·√ε``). Raises ``ValueError`` for an optimizer without
    such a group, or a group with ``nesterov=True`` or ``weight_decay != 0`` (see the module docstring).
    """
    total = float(loss)
    found = False
    for group in optimizer.param_groups:
        chain = optimizer.recipe.chain_for(group["role"])
        if not any(isinstance(t, RegularizedPolar) for t in chain.transforms):
            continue
        found = True
        if group["nesterov"] or group["weight_decay"] != 0:
            raise ValueError(f"hamiltonian_energy: the energy is derived for nesterov=False and weight_decay=0, "
                             f"got nesterov={group['nesterov']!r}, weight_decay={group['weight_decay']!r} in the "
                             f"{group['role']!r} group")
        weight = group["lr"] / (1 - group["momentum"])
        for p in group["params"]:
            state = optimizer.state.get(p)
            buf = state["momentum.momentum_buffer"] if state else torch.zeros_like(p)  # before the first step
            M = stack_matrices([buf], group["ortho_3d"])
            s = ScaleByShape.factor(p.shape, group["adjust_lr_fn"], group["ortho_3d"])
            total += weight * s * float(kinetic_energy(M, group["polar_eps"]))
    if not found:
        raise ValueError(f"hamiltonian_energy: optimizer {getattr(optimizer, 'name', optimizer)!r} has no param "
                         f"group with the regularized polar map (use 'regularized_muon')")
    return total
