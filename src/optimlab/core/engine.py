"""ChainOptimizer: one ``torch.optim.Optimizer`` that runs a Recipe's chains over buckets.

It honours torch's whole contract: ``param_groups`` hold every hyperparameter (read at step time, so
LR schedulers work), ``step(closure)`` returns the closure's loss, ``zero_grad``, ``add_param_group``,
hooks, ``state_dict``/``load_state_dict``. Per parameter, state keys are ``"step"`` and
``"<transform>.<key>"`` (stable across reorderings of a chain).

Non-finite gradients (``nonfinite=``):

* ``"error"`` (default): before anything is changed, raise ``FloatingPointError`` naming the first
  parameter whose gradient has a NaN or Inf — parameters and state stay as they were;
* ``"skip"``: leave parameters and state untouched for this step and count it in ``skipped_steps``;
* ``"ignore"``: no check (torch.optim's behaviour): NaN/Inf flow into state and parameters.

``fused=True`` (default) lets a fused kernel serve a whole chain where one exists (torch's fused Adam/AdamW
kernel for the adam chains); ``fused=False`` runs every transform one by one (the same formula).

``p.grad`` is never modified; parameters whose ``grad`` is ``None`` are skipped (their state and step
count do not advance).

Train and eval modes (``train()`` / ``eval()``, like ``nn.Module``'s): a chain whose last transform keeps
the parameters at a point other than the one to evaluate (schedule-free keeps ``y`` in the parameters and
``x`` in its state) defines ``to_eval(params, states, group)`` and ``to_train(params, states, group)``;
``eval()`` and ``train()`` call them on every parameter that has state. ``step()`` in eval mode is an error
for such a recipe (and harmless for any other). The mode is saved in ``state_dict()``.

Scalar state: a transform may declare ``scalar_state = {"key": 0.0}``, Python numbers kept per parameter
as ``"<transform>.<key>"`` next to its tensors (schedule-free's running weight sum). They are not tensors
so that a checkpoint neither casts them to a bf16 parameter's dtype nor rounds a long sum to 8 bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .context import StepContext
from .hparams import validate
from .recipe import Recipe
from .roles import ROLES, groups_from_params
from .transform import Bucket

__all__ = ["ChainOptimizer"]

_STRUCTURAL = ("params", "param_names", "role", "initial_lr")
NONFINITE = ("error", "skip", "ignore")


class ChainOptimizer(torch.optim.Optimizer):
    """An optimizer built from a :class:`Recipe`: one param group per role (plus any you add).

    Usually made with :func:`optimlab.create`. ``params`` is an iterable of tensors or of param-group
    dicts; each group has a ``"role"`` (inferred from ``ndim`` when missing) and hyperparameters
    (missing ones take the recipe's defaults for that role).
    """

    def __init__(self, params: Iterable, recipe: Recipe, *, nonfinite: str = "error", fused: bool = True):
        if nonfinite not in NONFINITE:
            raise ValueError(f"{recipe.name}: nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
        if not isinstance(fused, bool):
            raise TypeError(f"{recipe.name}: fused must be a bool, got {fused!r}")
        self.recipe = recipe
        self.nonfinite = nonfinite
        self.fused = fused
        self.skipped_steps = 0
        self.closure_evals = 0  # closure calls made by step() (core/context.py), in total
        self.training = True
        super().__init__(groups_from_params(params), defaults={})

    @property
    def name(self) -> str:
        return self.recipe.name

    def __repr__(self) -> str:
        lines = [f"ChainOptimizer({self.name!r}, nonfinite={self.nonfinite!r})"]
        for g in self.param_groups:
            hp = ", ".join(f"{k}={v!r}" for k, v in g.items() if k not in _STRUCTURAL)
            lines.append(f"  {g['role']:<9} {len(g['params'])} params: {self.recipe.chain_for(g['role'])}  [{hp}]")
        return "\n".join(lines)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{self.name}: a param group needs 'params'")
        if "role" not in group:
            ps = [params] if isinstance(params, Tensor) else list(params)
            roles = {g["role"] for g in groups_from_params(ps)}
            if len(roles) != 1:
                raise ValueError(f"{self.name}: param group mixes roles {sorted(roles)}; give it a 'role'")
            group["role"], group["params"] = roles.pop(), ps
        role = group["role"]
        if role not in ROLES:
            raise ValueError(f"{self.name}: role must be one of {ROLES}, got {role!r}")
        chain = self.recipe.chain_for(role)
        given = {k: v for k, v in group.items() if k not in _STRUCTURAL}
        values = self.recipe.defaults_for(role)
        values.update(validate(f"{self.name}[{role}]", chain.hparams, given))
        chain.check(values, f"{self.name}[{role}]")
        group.update(values)
        super().add_param_group(group)

    # -- train / eval modes ----------------------------------------------------------------------
    def _mode_hook(self, group: dict[str, Any], hook: str) -> Callable | None:
        transforms = self.recipe.chain_for(group["role"]).transforms
        return getattr(transforms[-1], hook, None) if transforms else None

    @torch.no_grad()
    def train(self, mode: bool = True) -> ChainOptimizer:
        """Switch to train mode (``mode=True``) or eval mode; a no-op for recipes without modes."""
        if not isinstance(mode, bool):
            raise TypeError(f"{self.name}: train(mode) takes a bool, got {mode!r}")
        if mode != self.training:
            for group in self.param_groups:
                hook = self._mode_hook(group, "to_train" if mode else "to_eval")
                ps = [p for p in group["params"] if self.state.get(p)]
                if hook is not None and ps:
                    hook(ps, [self.state[p] for p in ps], group)
            self.training = mode
        return self

    def eval(self) -> ChainOptimizer:
        """Eval mode: parameters hold the point to evaluate (schedule-free: the average ``x``)."""
        return self.train(False)

    # -- the step --------------------------------------------------------------------------------
    def _check_finite(self, work: list[tuple[dict, list[Tensor]]]) -> bool:
        """True when every gradient is finite. One reduction pass over the gradients (a sum: NaN and Inf
        propagate through it); only when it is not finite are the tensors checked one by one, so a sum
        that merely overflowed is not mistaken for a non-finite gradient."""
        sums = torch.stack([p.grad.sum(dtype=torch.float32) for _, ps in work for p in ps])
        if bool(sums.isfinite().all()):
            return True
        for g, ps in work:
            for i, p in enumerate(ps):
                if bool(p.grad.isfinite().all()):
                    continue
                if self.nonfinite == "skip":
                    self.skipped_steps += 1
                    return False
                names = g.get("param_names")
                label = repr(names[g["params"].index(p)]) if names else f"#{i} of the {g['role']!r} group"
                raise FloatingPointError(
                    f"{self.name}: gradient of parameter {label} (shape {tuple(p.shape)}) has NaN or Inf; "
                    f"nothing was updated (nonfinite='error'; 'skip' skips such steps, 'ignore' checks nothing)")
        return True

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        # step context (core/context.py): refuses a missing closure the recipe needs, calls the closure
        ctx = StepContext.begin(self, closure)
        loss = ctx.loss
        if ctx.skip:
            return loss
        work = []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            for p in ps:
                if p.grad.is_sparse:
                    raise RuntimeError(f"{self.name}: sparse gradients are not supported")
                if torch.is_complex(p):
                    raise RuntimeError(f"{self.name}: complex parameters are not supported")
            if ps:
                work.append((group, ps))
        if not work:
            return loss
        if not self.training and any(self._mode_hook(g, "to_train") for g, _ in work):
            raise RuntimeError(f"{self.name}: step() in eval mode; call opt.train() before training steps "
                               f"(and opt.eval() before evaluating), alongside model.train()/model.eval()")
        if self.nonfinite != "ignore" and not self._check_finite(work):
            return loss
        jobs, fresh = [], []
        for group, ps in work:
            chain = self.recipe.chain_for(group["role"])
            buckets: dict[tuple, list[Tensor]] = {}
            for p in ps:
                key = (p.shape if chain.same_shape else None, p.dtype, p.device)
                buckets.setdefault(key, []).append(p)
            for bps in buckets.values():
                states = []
                for p in bps:
                    st = self.state[p]
                    if not st:
                        st["step"] = 0
                        st.update(_fresh_state(chain, p, group))
                        fresh.append(st)
                    st["step"] += 1
                    states.append(st)
                bucket = Bucket(bps, [p.grad for p in bps], states, [s["step"] for s in states], group)
                bucket.ctx = ctx
                jobs.append((chain, bucket))
        ctx.prepare(jobs, fresh)  # global reductions before any chain steps (nothing for most recipes)
        for chain, bucket in jobs:
            chain.step(bucket, fused=self.fused)
        return loss

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["optimlab"] = {
            "optimizer": self.name,
            "roles": [g["role"] for g in self.param_groups],
            "shapes": [[tuple(p.shape) for p in g["params"]] for g in self.param_groups],
            "training": self.training,
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by an optimizer of the same recipe on parameters of the same shapes.

        Unlike torch.optim, this checks the optimizer name, the role and parameter count of each group,
        every parameter's shape and every state entry's keys and shape, and raises ``ValueError``
        naming the first mismatch — before anything is changed.
        """
        meta = state_dict.get("optimlab")
        if meta is None:
            raise ValueError(f"{self.name}: not an optimlab state dict (no 'optimlab' entry); "
                             f"keys: {sorted(state_dict)}")
        if meta["optimizer"] != self.name:
            raise ValueError(f"{self.name}: state dict was saved by optimizer {meta['optimizer']!r}")
        if len(meta["roles"]) != len(self.param_groups):
            raise ValueError(f"{self.name}: state dict has {len(meta['roles'])} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        index = 0
        for gi, (g, role, shapes) in enumerate(zip(self.param_groups, meta["roles"], meta["shapes"])):
            if role != g["role"]:
                raise ValueError(f"{self.name}: param group {gi} has role {g['role']!r}, saved role {role!r}")
            if len(shapes) != len(g["params"]):
                raise ValueError(f"{self.name}: param group {gi} ({role}) has {len(g['params'])} params, "
                                 f"saved {len(shapes)}")
            chain = self.recipe.chain_for(role)
            for p, shape in zip(g["params"], shapes):
                where = f"{self.name}: parameter {index} ({role} group {gi})"
                if tuple(p.shape) != tuple(shape):
                    raise ValueError(f"{where} has shape {tuple(p.shape)}, saved {tuple(shape)}")
                saved = state_dict["state"].get(index)
                if saved is not None:
                    fresh = _fresh_state(chain, p.detach(), g)
                    if set(saved) != {"step", *fresh}:
                        raise ValueError(f"{where}: saved state keys {sorted(saved)} != expected "
                                         f"{sorted(['step', *fresh])}")
                    for k, v in fresh.items():
                        if isinstance(v, Tensor) and tuple(saved[k].shape) != tuple(v.shape):
                            raise ValueError(f"{where}: saved state {k!r} has shape {tuple(saved[k].shape)}, "
                                             f"expected {tuple(v.shape)}")
                index += 1
        rest = {k: v for k, v in state_dict.items() if k != "optimlab"}
        super().load_state_dict(rest)
        self.training = bool(meta.get("training", True))


def _fresh_state(chain: Any, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
    """A parameter's initial state: the chain's tensors plus the scalar state its transforms declare."""
    state: dict[str, Any] = chain.init(p, group)
    for t in chain.transforms:
        for k, v in getattr(t, "scalar_state", {}).items():
            state[f"{t.name}.{k}"] = v
    return state

