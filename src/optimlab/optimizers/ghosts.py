"""The ghosts-of-softmax step controller as a wrapper recipe around any registered optimizer."""
from __future__ import annotations

from ..core.recipe import Recipe
from ..core.registry import get_recipe
from ..core.transform import Chain, chain
from ..transforms.ghosts import SafeRadiusStep

__all__ = ["safe_radius"]

PAPER = ("Ghosts of Softmax: Complex Singularities That Limit Safe Step Sizes in Cross-Entropy, "
         "arXiv:2603.13552")


def safe_radius(base: str | Recipe) -> Recipe:
    """``base``'s update, with every step scaled to at most ``radius_c`` safe radii (not registered: a
    wrapper; create it with ``optimlab.create(model, safe_radius("adam"), lr=..., radius_c=1.0)``).

    Rule: the base computes its step ``Δ = −lr·u`` as usual on every bucket; then one JVP of the logits along
    Δ (``a = JΔ``, from ``closure.outputs``) gives ``r = τ/ρ_a = max_n(max_k a_nk − min_k a_nk)/π`` with
    ``ρ_a = π/Δ_a`` the safe radius along Δ/τ; the step taken is ``min(1, c/r)·Δ``.
    Defaults: the base's, plus radius_c c = 1.0 (radius units; the paper's bound τ ≤ ρ_a).
    Needs ``step(closure)`` with ``closure.outputs = lambda: model(x)`` (the logits of the closure's batch);
    costs one extra forward and two backward passes per step. The base's last transform must not apply the
    update itself (schedule-free is refused), and its fused kernels are bypassed.
    Paper: arXiv:2603.13552 (the controller; its exact form in the paper needs the paper: this is the
    reading "scale the step to τ ≤ c·ρ_a" of the abstract).
    """
    rec = get_recipe(base) if isinstance(base, str) else base
    chains: dict[str, Chain] = {}
    for role, c in rec.chains.items():
        if getattr(c.transforms[-1] if c.transforms else None, "apply", None) is not None:
            raise ValueError(f"safe_radius: {rec.name}[{role}] applies its own update ({c}); it cannot be wrapped")
        chains[role] = chain(*c.transforms, SafeRadiusStep())
    return rec.replace(f"{rec.name}+safe_radius", chains=chains,
                       defaults={role: rec.defaults.get(role, {}) for role in chains},
                       summary=f"{rec.name} with steps capped at radius_c safe radii π/Δ_a (ghosts of softmax)",
                       paper=PAPER, rule=f"{rec.rule}\nΔ = −lr·u;  x ← x + min(1, c·ρ_a/‖Δ‖)·Δ",
                       needs=rec.needs | {"jvp"})
