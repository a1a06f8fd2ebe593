"""ChainOptimizer: one ``torch.optim.Optimizer`` that runs a Recipe's chains over buckets.

It honours torch's whole contract: ``param_groups`` hold every hyperparameter (read at step time, so
LR schedulers work), ``step(closure)`` returns the closure's loss, ``zero_grad``, ``add_param_group``,
hooks, ``state_dict``/``load_state_dict``. Per parameter, state keys are ``"step"`` and
``"<transform>.<key>"`` (stable across reorderings of a chain).

Non-finite gradients (``nonfinite=``):

* ``"error"`` (default): raise ``FloatingPointError`` naming the first parameter (by name when the group
  has ``param_names``, else by its index in its group) whose gradient has a NaN or Inf — parameters and
  state stay as they were;
* ``"skip"``: leave parameters and state untouched for this step and count it in ``skipped_steps``;
* ``"ignore"``: no check (torch.optim's behaviour): NaN/Inf flow into state and parameters.

How the check runs (see ``finite.py``): one multi-tensor norm pass over all gradients gives a per-device
flag, with no host synchronisation. Chains served by a fused kernel take that flag as
``found_inf`` (the kernel skips itself when it is set) and are launched first; the host reads the flag
once, after them and before any chain that cannot skip itself. On a raised flag the step counts and any
state created in this step are undone, so "nothing updated" holds for both kinds of chain. On an
accelerator, when every chain of the step was fused, the read is deferred to the next ``step()`` (or
``state_dict()``, or :meth:`~ChainOptimizer.settle`): that step's kernels already skipped themselves, so
the parameters are as safe, and the error (or the skip count) arrives one call late, naming the parameter.
The cost of the check is one read of the gradients (BENCHMARKS.md). Under ``torch.compile`` the fused
kernels are not used (torch's fused AdamW does not survive functionalization; inductor fuses the
transforms' foreach ops itself), so the compiled step works at the defaults, and with ``"error"`` the check
stays on the device (``guarded.py``: masked write-back and device assertions, no graph break; the refusal
is then a ``RuntimeError`` with the same message). ``"skip"`` under compile still reads the flag on the
host (one graph break).

``fused=True`` (default) lets a fused kernel serve a whole chain where one exists (torch's fused Adam/AdamW
kernel for the adam chains); ``fused=False`` runs every transform one by one (the same formula).

Distributed training (``optimlab.distributed``, docs/distributed.md): ``process_group=`` (opt-in) makes a
replicated (DDP) optimizer split its whole-matrix work over the group's ranks; DTensor (FSDP2) parameters
are detected by themselves. The engine only hands the prepared buckets to that executor (``_distributed``):
it agrees with the other ranks (settings, non-finite flags) and runs the chains; the step loop stays here.

``p.grad`` is never modified; parameters whose ``grad`` is ``None`` are skipped (their state and step
count do not advance). Recipes that need function values only (``needs={"value"}``, zeroth order) step
every parameter that requires grad and never read a gradient; their step returns the ``ctx.loss`` they set.

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

from . import checkpoint, finite, guarded
from .context import SkipStep, StepContext
from .hparams import validate
from .params import check_param, check_params
from .recipe import Recipe
from .roles import ROLES, groups_from_params
from .transform import Bucket

__all__ = ["ChainOptimizer"]

_STRUCTURAL = ("params", "param_names", "role")
#: keys torch's LR schedulers write into param groups; kept, and never validated as hyperparameters
SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "base_lr", "base_momentum", "max_momentum")
NONFINITE = ("error", "skip", "ignore")


class ChainOptimizer(torch.optim.Optimizer):
    """An optimizer built from a :class:`Recipe`: one param group per role (plus any you add).

    Usually made with :func:`optimlab.create`. ``params`` is an iterable of tensors, of ``(name, tensor)``
    pairs, or of param-group dicts; each group has a ``"role"`` (inferred from ``ndim`` when missing) and
    hyperparameters (missing ones take the recipe's defaults for that role). Every parameter must be a
    floating, non-empty tensor on a real device (not ``meta``); anything else is refused here, not at
    ``step()``. ``defaults`` holds the main role's defaults (so that ``OneCycleLR``/``CyclicLR`` find
    ``betas`` or ``momentum``); each group holds only the hyperparameters its own chain reads, plus the
    keys torch's schedulers add.
    """

    def __init__(self, params: Iterable, recipe: Recipe, *, nonfinite: str = "error", fused: bool = True,
                 process_group: Any = None):
        if nonfinite not in NONFINITE:
            raise ValueError(f"{recipe.name}: nonfinite must be one of {NONFINITE}, got {nonfinite!r}")
        if not isinstance(fused, bool):
            raise TypeError(f"{recipe.name}: fused must be a bool, got {fused!r}")
        self.recipe = recipe
        self.nonfinite = nonfinite
        self.fused = fused
        self.skipped_steps = 0
        self._pending: Any = None  # a step whose non-finite check is deferred (see settle())
        self.closure_evals = 0  # closure calls made by step() (core/context.py), in total
        self.training = True
        groups = groups_from_params(check_params(params, recipe.name))
        super().__init__(groups, defaults=_main_defaults(recipe))
        self._distributed: Any = None  # optimlab.distributed's executor (None: one process)
        if process_group is not None or _any_dtensor(self.param_groups):
            from ..distributed import attach  # lazy: distributed sits above core

            self._distributed = attach(self, process_group)

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
        """Add a group; without a ``"role"`` its parameters are split into one group per role (``ndim >= 2``:
        matrix, else vector), each keeping the given hyperparameters. Names (``param_names`` or
        ``(name, tensor)`` pairs) are optional: they are made up (``"group3.0"``...) when the other groups
        are named, and dropped when they are not, as torch requires all groups alike."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{self.name}: add_param_group takes a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{self.name}: a param group needs 'params'; got keys {sorted(param_group)}")
        group = dict(param_group)
        params = group["params"]
        ps = [params] if isinstance(params, Tensor) else list(check_params(params, self.name, what="params"))
        names = group.pop("param_names", None)
        if ps and all(isinstance(p, tuple) for p in ps):
            names, ps = [p[0] for p in ps], [p[1] for p in ps]
        if names is not None and (not isinstance(names, (list, tuple)) or len(names) != len(ps)):
            raise ValueError(f"{self.name}: param_names must be a list of {len(ps)} names, got {names!r}")
        for i, p in enumerate(ps):
            check_param(p, self.name, repr(names[i]) if names else f"#{i} of the new group")
        if "role" not in group:
            for role in ROLES:
                sel = [i for i, p in enumerate(ps) if (ROLES[0] if p.ndim >= 2 else "vector") == role]
                if sel:
                    sub = {**group, "role": role, "params": [ps[i] for i in sel]}
                    if names is not None:
                        sub["param_names"] = [names[i] for i in sel]
                    self.add_param_group(sub)
            return
        role = group["role"]
        if role not in ROLES:
            raise ValueError(f"{self.name}: role must be one of {ROLES}, got {role!r}")
        named = bool(self.param_groups) and "param_names" in self.param_groups[0]
        if named and names is None:
            names = [f"group{len(self.param_groups)}.{i}" for i in range(len(ps))]
        group["params"] = ps
        if names is not None and (named or not self.param_groups):
            group["param_names"] = list(names)
        chain = self.recipe.chain_for(role)
        given = {k: v for k, v in group.items() if k not in _STRUCTURAL and k not in SCHEDULER_KEYS}
        values = self.recipe.defaults_for(role)
        values.update(validate(f"{self.name}[{role}]", chain.hparams, given))
        chain.check(values, f"{self.name}[{role}]")
        group.update(values)
        keep = set(group)
        super().add_param_group(group)
        # torch's add_param_group fills in every key of ``defaults``; a group keeps only what its chain reads
        added = self.param_groups[-1]
        for k in [k for k in added if k not in keep]:
            del added[k]

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
    def _work(self) -> list[tuple[dict, list[Tensor]]]:
        work = []
        values_only = "value" in self.recipe.needs
        for group in self.param_groups:
            ps = [p for p in group["params"] if (p.requires_grad if values_only else p.grad is not None)]
            for p in ps:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError(f"{self.name}: sparse gradients are not supported")
                if torch.is_complex(p):
                    raise RuntimeError(f"{self.name}: complex parameters are not supported")
            if ps:
                work.append((group, ps))
        return work

    def _buckets(self, work: list[tuple[dict, list[Tensor]]]) -> tuple[list[tuple[Any, Bucket]], list[Tensor]]:
        """Buckets with their state ready (created where new, step counts advanced), and the parameters
        whose state was created here (so that a refused step can take them back)."""
        out, created = [], []
        for group, ps in work:
            chain = self.recipe.chain_for(group["role"])
            split: dict[tuple, list[Tensor]] = {}
            for p in ps:
                split.setdefault((p.shape if chain.same_shape else None, p.dtype, p.device), []).append(p)
            for bps in split.values():
                states = []
                for p in bps:
                    st = self.state[p]
                    if not st:
                        created.append(p)
                        st["step"] = 0
                        st.update(_fresh_state(chain, p, group))
                    st["step"] += 1
                    states.append(st)
                out.append((chain, Bucket(bps, [p.grad for p in bps], states, [s["step"] for s in states], group)))
        return out, created

    def _undo(self, buckets: list[tuple[Any, Bucket]], created: list[Tensor]) -> None:
        for _, b in buckets:
            for st in b.states:
                st["step"] -= 1
        for p in created:
            del self.state[p]

    def settle(self) -> None:
        """Read the last step's deferred non-finite flag now (on an accelerator, when every chain was fused,
        ``step()`` leaves it to the next call): raise (``"error"``) or count a skip, after undoing that step's
        step counts and new state (its kernels skipped themselves). ``step()`` and ``state_dict()`` call it;
        call it after the last step of a run."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        check, buckets, created, work = pending
        i = check.bad()
        if i is not None:
            self._undo(buckets, created)
            self._refuse(work, i, late=True)

    def _refuse(self, work: list[tuple[dict, list[Tensor]]], i: int | None = None, late: bool = False) -> None:
        """After a raised flag: raise naming the first non-finite gradient, or count a skip."""
        if self.nonfinite == "skip":
            self.skipped_steps += 1
            return
        if i is None:
            i = finite.first_nonfinite([p.grad for _, ps in work for p in ps])
        raise FloatingPointError(finite.messages(self.name, work, late)[i])

    def _prepared(self, work: list[tuple[dict, list[Tensor]]], ctx: StepContext
                  ) -> tuple[list[tuple[Any, Bucket]], list[Tensor]]:
        """:meth:`_buckets`, each bucket given the step context, and the context's global pre-pass run
        (a no-op for recipes without ``prepare`` hooks); a refusing hook leaves the state as it was."""
        buckets, created = self._buckets(work)
        for _, b in buckets:
            b.ctx = ctx
        ctx.prepare(buckets, [self.state[p] for p in created])
        return buckets, created

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        # step context (core/context.py): refuses a missing closure the recipe needs, calls the closure
        self.settle()  # the previous step's deferred check, if any
        ctx = StepContext.begin(self, closure)
        loss = ctx.loss
        if ctx.skip:
            return loss
        work = self._work()
        if not work:
            return loss
        if not self.training and any(self._mode_hook(g, "to_train") for g, _ in work):
            raise RuntimeError(f"{self.name}: step() in eval mode; call opt.train() before training steps "
                               f"(and opt.eval() before evaluating), alongside model.train()/model.eval()")
        compiling = torch.compiler.is_compiling()
        fused = self.fused and not compiling  # torch's fused kernels do not survive functionalization
        values_only = "value" in self.recipe.needs  # zeroth order: no gradients to check
        check = None if self.nonfinite == "ignore" or values_only else finite.Check(
            [p.grad for _, ps in work for p in ps], compiled=compiling)
        found = None if check is None else check.found
        if check is not None and "reevaluate" in ctx.needs and check.flagged():
            # the pre-pass would re-evaluate from a non-finite gradient: refuse it first, naming the parameter
            if (i := check.bad()) is not None:
                self._refuse(work, i)
                return loss
            check = found = None  # a false alarm (a CPU sum of squares overflowed on huge finite gradients)
        try:
            buckets, created = self._prepared(work, ctx)
        except SkipStep:  # a non-finite re-evaluation under nonfinite='skip' (the pre-pass took the step back)
            self.skipped_steps += 1
            return loss
        if ctx.skip:  # a value-only recipe found a non-finite loss in its pre-pass (nonfinite="skip")
            self._undo(buckets, created)
            return ctx.loss
        if self._distributed is not None:  # agree with the other ranks, then owner-split / sharded chains
            if not self._distributed.refuse(work, found, lambda: self._undo(buckets, created), ctx):
                self._distributed.run(buckets, fused)
                if any(c.finishes for c, _ in buckets):  # the post-pass, as in one process (DDP: whole params)
                    ctx.finish(buckets)
            return ctx.loss if values_only else loss
        if compiling and guarded.applies(check, self.nonfinite):  # on-device check, no graph break
            guarded.run(buckets, check, finite.messages(self.name, work), ctx)
            return ctx.loss if values_only else loss
        later = []
        for chain, b in buckets:
            # a fused kernel takes the flag as found_inf and skips itself: it may run before the flag is read
            if found is not None and fused and chain.fused:
                b.found_inf = found[b.params[0].device]
                if chain.step_fused(b):
                    continue
                b.found_inf = None
            later.append((chain, b))
        if check is not None and not later and check.can_defer():  # every chain skipped itself on the flag:
            check.defer()  # read it at the next step() / state_dict() / settle(), no host sync now
            self._pending = (check, buckets, created, work)
            return loss
        if check is not None and check.flagged():  # the one host synchronisation of a checked step
            self._undo(buckets, created)
            if (i := check.bad()) is not None:
                self._refuse(work, i)
                return loss
            try:  # a false alarm (a CPU sum of squares overflowed on huge finite gradients): every chain, unflagged
                buckets, created = self._prepared(work, ctx)
            except SkipStep:
                self.skipped_steps += 1
                return loss
            later = buckets
            for _, b in later:
                b.found_inf = None
        for chain, b in later:
            chain.step(b, fused=fused)
        if any(c.finishes for c, _ in later):
            ctx.finish(later)
        return ctx.loss if values_only else loss

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.settle()
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

        Unlike torch.optim, this checks everything torch would use before anything is changed: the
        optimizer name; each group's role, size and hyperparameters (validated as at construction); the
        mapping torch applies (the k-th saved parameter id, in group order, gives its state to the k-th
        parameter here), with every id used once; each state entry's keys, step count, and every tensor's
        shape, dtype and layout against its parameter. A refusal is a ``TypeError``/``ValueError`` naming
        the entry and the value, and leaves the optimizer unchanged.
        """
        clean, training = checkpoint.validated(self, state_dict)
        super().load_state_dict(clean)
        self.training = training
        self._pending = None  # the loaded state replaces the step whose check was still deferred

def _fresh_state(chain: Any, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
    """A parameter's initial state: the chain's tensors plus the scalar state its transforms declare."""
    state: dict[str, Any] = chain.init(p, group)
    for t in chain.transforms:
        for k, v in getattr(t, "scalar_state", {}).items():
            state[f"{t.name}.{k}"] = v
    return state



def _any_dtensor(groups: list[dict]) -> bool:
    """Whether a parameter is a DTensor (FSDP2), without importing torch.distributed here."""
    return any(any(c.__name__ == "DTensor" for c in type(p).__mro__) for g in groups for p in g["params"])


def _main_defaults(recipe: Recipe) -> dict[str, Any]:
    """``defaults`` for torch: the main role's hyperparameters (``matrix`` when every role is main)."""
    role = next((r for r in recipe.main if r != "*"), "matrix")
    return recipe.defaults_for(role)
