"""Role routing: every trainable parameter gets exactly one role, decided by rules you can read.

Roles:

* ``matrix``    — hidden weights of matrix layers (Linear, Conv (kernel flattened to 2-D), attention,
  recurrent layers). Muon-type rules apply here.
* ``embedding`` — weights of ``nn.Embedding`` / ``nn.EmbeddingBag``; a weight tied to the output head is
  an embedding too (the summary notes the tie).
* ``head``      — the output layer's weight (see below).
* ``vector``    — everything with fewer than two dimensions: biases, norm gains, scalars.

The head, when ``head="auto"``: the ``nn.Linear`` tied to an embedding if there is one; else, in a model
with an embedding, the last ``nn.Linear`` whose ``out_features`` equals the vocabulary size; else the last
``nn.Linear`` registered in the model. ``head=`` names it explicitly (module or parameter names),
``head=None`` declares there is none. ``roles={"glob": "role"}`` assigns any parameter by name.

``ndim == 2`` alone is never the rule: a parameter with two or more dimensions that belongs to no known
matrix layer and that no explicit rule names raises ``ValueError`` naming it, as does one that two
explicit rules name with different roles.

Finer roles (``fine=True``, or named explicitly with ``roles=``), for recipes that treat these blocks by
their own symmetry (e.g. ``symmetry_muon``); without ``fine=True`` they stay ``matrix``, so a recipe that
does not know them is unaffected. Detection is by name and module structure, in the ``nn.Linear``
``(out, in)`` layout (HF LLaMA / Qwen / OLMoE conventions). A parameter's *unit* is its module's last name
for a ``weight``, else its own name (raw stacked expert tensors); its *container* is the module one level up:

* ``router`` — MoE router matrix: unit ``router``, or unit ``gate`` whose container also holds ``experts``;
* ``gate``   — SwiGLU input side (rows are the intermediate neurons): unit ``gate_proj``, ``up_proj``,
  ``gate_up_proj``, ``w1`` or ``w3`` in a container that also holds a ``down_proj`` / ``w2``;
* ``down``   — SwiGLU output side (columns are the intermediate neurons): unit ``down_proj`` / ``w2`` in a
  container that also holds a gate-side unit;
* ``expert`` — any other weight (ndim ≥ 2) inside an ``experts`` container (e.g. plain-MLP experts).

Fine roles apply to weights with ``ndim >= 2`` (biases stay ``vector``). A router-named weight inside an
``experts`` container, or one that is not a matrix, is ambiguous: ``ValueError`` naming it. Under
``fine=True`` the automatic head is never a fine-role weight.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["ROLES", "FINE_ROLES", "RoleAssignment", "assign_roles", "groups_from_params"]

ROLES = ("matrix", "embedding", "head", "vector", "router", "gate", "down", "expert")
#: Roles that only ``fine=True`` (or an explicit ``roles=``) assigns; each refines ``matrix``.
FINE_ROLES = ("router", "gate", "down", "expert")
GATE_UNITS = ("gate_proj", "up_proj", "gate_up_proj", "w1", "w3")
DOWN_UNITS = ("down_proj", "w2")

MATRIX_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.MultiheadAttention, nn.RNNBase,
)
EMBEDDING_MODULES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


@dataclass
class RoleAssignment:
    """The role of each trainable parameter, why, and the param groups it implies."""

    roles: dict[str, str]
    params: dict[str, torch.Tensor]
    why: dict[str, str]
    frozen: int = 0
    ties: dict[str, list[str]] = field(default_factory=dict)

    def groups(self) -> list[dict]:
        """One param group per role present, in the order of ``ROLES``."""
        out = []
        for role in ROLES:
            names = [n for n, r in self.roles.items() if r == role]
            if names:
                out.append({"params": [self.params[n] for n in names], "param_names": names, "role": role})
        return out

    def summary(self, chains: Mapping[str, str] | None = None) -> str:
        """A short table: role, parameter count, numel, chain; then where head/embedding came from."""
        rows = [("role", "params", "numel", "chain")]
        for g in self.groups():
            numel = sum(p.numel() for p in g["params"])
            rows.append((g["role"], str(len(g["params"])), f"{numel:,}", (chains or {}).get(g["role"], "")))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        for n, r in self.roles.items():
            if r in ("head", "embedding") or self.why[n].startswith("explicit"):
                lines.append(f"  {r:<9} {n}  ({self.why[n]})")
        if self.frozen:
            lines.append(f"  ({self.frozen} frozen parameters skipped)")
        return "\n".join(lines)


def _names_of(model: nn.Module) -> tuple[dict[int, list[str]], dict[int, list[nn.Module]]]:
    """All names and all owning modules of each parameter (a tied parameter has several)."""
    names: dict[int, list[str]] = {}
    owners: dict[int, list[nn.Module]] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        for pname, p in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            names.setdefault(id(p), []).append(full)
            if mod not in owners.setdefault(id(p), []):
                owners[id(p)].append(mod)
    return names, owners


def _resolve(model: nn.Module, what: str, spec: str | Sequence[str]) -> set[int]:
    """Parameter ids named by ``spec``: module names (their ``weight``) or parameter names."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters(remove_duplicate=False))
    ids: set[int] = set()
    for s in specs:
        if s in params:
            ids.add(id(params[s]))
        elif s in modules and isinstance(getattr(modules[s], "weight", None), torch.Tensor):
            ids.add(id(modules[s].weight))
        else:
            candidates = [n for n, m in modules.items() if isinstance(getattr(m, "weight", None), torch.Tensor) and n]
            raise ValueError(f"assign_roles: {what}={s!r} names no module or parameter of "
                             f"{type(model).__name__}; modules with a weight: {', '.join(candidates[-8:])}")
    return ids


def _fine_roles(model: nn.Module, skip: Mapping[int, object]) -> dict[int, tuple[str, str]]:
    """The fine role of each weight the name rules of the module docstring cover: id -> (role, why).
    Parameters in ``skip`` (named by an explicit rule, which wins) are not examined."""
    modules = dict(model.named_modules())
    out: dict[int, tuple[str, str]] = {}
    for name, p in model.named_parameters():
        if p.ndim < 2 or id(p) in skip:
            continue
        path = name.split(".")
        unit_path = path[:-1] if path[-1] == "weight" else path
        unit = unit_path[-1] if unit_path else ""
        container = modules.get(".".join(unit_path[:-1]))
        kids = set(dict(container.named_children())) | set(dict(container.named_parameters(recurse=False))) \
            if container is not None else set()
        in_experts = "experts" in path[:-1]
        if unit == "router" or (unit == "gate" and "experts" in kids):
            if in_experts or p.ndim != 2:
                raise ValueError(f"assign_roles: parameter {name!r} (shape {tuple(p.shape)}) is named like a MoE "
                                 f"router but {'sits inside experts' if in_experts else 'is not a matrix'}; "
                                 f"name its role, e.g. roles={{{name!r}: 'matrix'}}")
            out[id(p)] = ("router", f"router: unit {unit!r}")
        elif unit in GATE_UNITS and kids & set(DOWN_UNITS):
            out[id(p)] = ("gate", f"SwiGLU input side {unit!r}")
        elif unit in DOWN_UNITS and kids & set(GATE_UNITS):
            out[id(p)] = ("down", f"SwiGLU output side {unit!r}")
        elif in_experts:
            out[id(p)] = ("expert", "inside 'experts'")
    return out


def _auto_head(model: nn.Module, owners: dict[int, list[nn.Module]], skip: Mapping | None = None
               ) -> tuple[int | None, str]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.weight.requires_grad
               and id(m.weight) not in (skip or {})]
    embeddings = [m for m in model.modules() if isinstance(m, EMBEDDING_MODULES)]
    for n, m in linears:
        if any(isinstance(o, EMBEDDING_MODULES) for o in owners[id(m.weight)]):
            return id(m.weight), f"tied: embedding and head {n!r}"
    if embeddings:
        vocab = {e.num_embeddings for e in embeddings}
        match = [(n, m) for n, m in linears if m.out_features in vocab]
        if match:
            return id(match[-1][1].weight), f"head: nn.Linear {match[-1][0]!r} maps to the vocabulary"
    if linears:
        return id(linears[-1][1].weight), f"head: last nn.Linear {linears[-1][0]!r}"
    return None, ""


def assign_roles(model: nn.Module, *, head: str | Sequence[str] | None = "auto",
                 embedding: str | Sequence[str] = (), roles: Mapping[str, str] | None = None,
                 fine: bool = False) -> RoleAssignment:
    """Give every trainable parameter of ``model`` exactly one role (see the module docstring).

    ``fine=True`` also assigns the finer roles ``router``, ``gate``, ``down``, ``expert``.
    """
    if not isinstance(fine, bool):
        raise TypeError(f"assign_roles: fine must be a bool, got {fine!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"assign_roles: model must be an nn.Module, got {type(model).__name__}")
    roles = dict(roles or {})
    for pat, r in roles.items():
        if r not in ROLES:
            raise ValueError(f"assign_roles: roles[{pat!r}] must be one of {ROLES}, got {r!r}")
    names, owners = _names_of(model)
    explicit: dict[int, tuple[str, str]] = {}  # id -> (role, why)

    def claim(pid: int, role: str, why: str) -> None:
        if pid in explicit and explicit[pid][0] != role:
            raise ValueError(f"assign_roles: parameter {names[pid][0]!r} is covered by two rules: "
                             f"{explicit[pid][1]} -> {explicit[pid][0]!r} and {why} -> {role!r}")
        explicit[pid] = (role, why)

    for pid, pnames in names.items():
        for pat, r in roles.items():
            if any(fnmatch.fnmatchcase(n, pat) for n in pnames):
                claim(pid, r, f"explicit roles[{pat!r}]")
    if embedding:
        for pid in _resolve(model, "embedding", embedding):
            claim(pid, "embedding", "explicit embedding=")
    if head not in ("auto", None):
        for pid in _resolve(model, "head", head):
            claim(pid, "head", "explicit head=")
    finer = _fine_roles(model, explicit) if fine else {}  # explicit rules win, so they are settled first
    head_id, head_why = _auto_head(model, owners, finer) if head == "auto" else (None, "")

    out, params, why, ties, frozen = {}, {}, {}, {}, 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            frozen += 1
            continue
        pid, mods = id(p), owners[id(p)]
        if len(names[pid]) > 1:
            ties[name] = names[pid][1:]
        if pid in explicit:
            role, reason = explicit[pid]
        elif any(isinstance(m, EMBEDDING_MODULES) for m in mods):
            role, reason = "embedding", (head_why if pid == head_id else f"nn.{type(mods[0]).__name__}")
        elif pid == head_id:
            role, reason = "head", head_why
        elif pid in finer:
            role, reason = finer[pid]
        elif p.ndim < 2:
            role, reason = "vector", f"{p.ndim}-D"
        elif any(isinstance(m, MATRIX_MODULES) for m in mods):
            role, reason = "matrix", f"weight of nn.{type(mods[0]).__name__}"
        else:
            raise ValueError(
                f"assign_roles: no rule covers parameter {name!r} (shape {tuple(p.shape)}, owned by "
                f"{type(mods[0]).__name__}); name its role, e.g. roles={{{name!r}: 'matrix'}}")
        out[name], params[name], why[name] = role, p, reason
    return RoleAssignment(out, params, why, frozen, ties)


def _tensor_role(p: torch.Tensor) -> str:
    return "matrix" if p.ndim >= 2 else "vector"


def groups_from_params(params: Iterable) -> list[dict]:
    """Param groups from a plain iterable of tensors, of ``(name, tensor)`` pairs, or of group dicts.

    Without a module there is nothing to tell a head or an embedding from a hidden matrix, so tensors
    with ``ndim >= 2`` become ``matrix`` and the rest ``vector``. A user's group dict keeps its own
    hyperparameters; it is split by that rule unless it sets ``"role"`` itself (the user's groups win).
    """
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    if all(isinstance(g, dict) for g in items):
        out = []
        for g in items:
            ps = [g["params"]] if isinstance(g["params"], torch.Tensor) else list(g["params"])
            if "role" in g:
                if g["role"] not in ROLES:
                    raise ValueError(f"param group role must be one of {ROLES}, got {g['role']!r}")
                out.append({**g, "params": ps})
                continue
            for role in ROLES:
                sel = [p for p in ps if _tensor_role(p[1] if isinstance(p, tuple) else p) == role]
                if sel:
                    out.append({**g, "params": sel, "role": role})
        return out
    if any(isinstance(g, dict) for g in items):
        raise TypeError("params must be all tensors or all param-group dicts, not a mix")
    return [{"params": [p for p in items if _tensor_role(p[1] if isinstance(p, tuple) else p) == role],
             "role": role} for role in ROLES
            if any(_tensor_role(p[1] if isinstance(p, tuple) else p) == role for p in items)]
