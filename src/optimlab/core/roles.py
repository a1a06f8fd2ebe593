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
``head=None`` declares there is none. ``roles={"glob": "role"}`` assigns any parameter by name; a glob
that matches no parameter is a ``ValueError`` (a typo would otherwise be silently ignored).

Without a module (``create(model.named_parameters(), ...)``, ``(name, tensor)`` pairs, or param groups
with ``"param_names"``) the same decisions are made from names and shapes alone: see
:mod:`optimlab.core.routing`. Bare tensors have neither; they are routed by ``ndim``, with a
:class:`RoleWarning` when a matrix looks like an embedding or head.

Fused q/k/v (row blocks): ``nn.MultiheadAttention.in_proj_weight`` (shape ``(3E, E)``, the q, k and v
projections stacked by rows), and the ``weight`` of a linear layer named ``c_attn`` (nanoGPT), ``qkv`` /
``qkv_proj`` (timm, many ViTs), ``Wqkv`` (MosaicML) or ``in_proj`` of shape ``(3E, E)`` are recorded in
:attr:`RoleAssignment.blocks` as 3 row blocks (:func:`fused_qkv_blocks`). Not matched on purpose: GPT-NeoX's
``query_key_value`` (interleaved per head, not three contiguous blocks) and Hugging Face GPT-2's ``Conv1D``
``c_attn`` (shape ``(E, 3E)``, blocks by columns); name those blocks yourself or accept one whole matrix. Recipes whose
chain orthogonalizes (``Orthogonalize``'s ``ortho_blocks`` hyperparameter) get such weights in a param
group of their own with ``ortho_blocks=3``: each ``(E, E)`` block is orthogonalized (and shape-scaled)
separately, as three separate q/k/v ``nn.Linear`` would be. ``create(..., ortho_blocks=1)`` (or
``per_role={"matrix": {"ortho_blocks": 1}}``) opts out: one group, every matrix whole.

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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["ROLES", "FINE_ROLES", "RoleAssignment", "RoleWarning", "assign_roles", "groups_from_params",
           "BLOCKS_KEY"]

ROLES = ("matrix", "embedding", "head", "vector", "router", "gate", "down", "expert")
#: Roles that only ``fine=True`` (or an explicit ``roles=``) assigns; each refines ``matrix``.
FINE_ROLES = ("router", "gate", "down", "expert")
GATE_UNITS = ("gate_proj", "up_proj", "gate_up_proj", "w1", "w3")
DOWN_UNITS = ("down_proj", "w2")

MATRIX_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.MultiheadAttention, nn.RNNBase,
)
EMBEDDING_MODULES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)
#: The param-group hyperparameter (declared by the ``Orthogonalize`` transform) that splits each matrix's
#: rows into that many equal blocks, orthogonalized separately.
BLOCKS_KEY = "ortho_blocks"
#: linear layers whose weight stacks contiguous q, k, v row blocks (nanoGPT, timm, MosaicML, torch)
QKV_UNITS = frozenset({"c_attn", "qkv", "qkv_proj", "wqkv", "in_proj"})


def fused_qkv_blocks(name: str, p: torch.Tensor) -> int:
    """3 for a fused q/k/v weight of shape ``(3E, E)`` named as one (see the module docstring), else 1."""
    if p.ndim != 2 or p.shape[0] != 3 * p.shape[1]:
        return 1
    parts = name.split(".")
    if parts[-1] == "in_proj_weight" or (parts[-1] == "weight" and len(parts) > 1
                                         and parts[-2].lower() in QKV_UNITS):
        return 3
    return 1


class RoleWarning(UserWarning):
    """Routing without names or a module put a parameter that looks like an embedding or head into a role
    whose update differs (e.g. Muon's ``matrix``)."""


@dataclass
class RoleAssignment:
    """The role of each trainable parameter, why, and the param groups it implies."""

    roles: dict[str, str]
    params: dict[str, torch.Tensor]
    why: dict[str, str]
    frozen: int = 0
    ties: dict[str, list[str]] = field(default_factory=dict)
    #: name -> number of equal row blocks (fused q/k/v: 3); parameters not listed have 1
    blocks: dict[str, int] = field(default_factory=dict)

    def groups(self, split: Collection[str] = ()) -> list[dict]:
        """One param group per role present, in the order of ``ROLES``. For the roles in ``split``, the
        parameters with row blocks go to a group of their own (same role) with ``ortho_blocks=k``."""
        out = []
        for role in ROLES:
            names = [n for n, r in self.roles.items() if r == role]
            fused = [n for n in names if role in split and self.blocks.get(n, 1) > 1]
            plain = [n for n in names if n not in fused]
            if plain:
                out.append({"params": [self.params[n] for n in plain], "param_names": plain, "role": role})
            for k in sorted({self.blocks[n] for n in fused}):
                ns = [n for n in fused if self.blocks[n] == k]
                out.append({"params": [self.params[n] for n in ns], "param_names": ns, "role": role, BLOCKS_KEY: k})
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
        if self.blocks:
            k = sorted(set(self.blocks.values()))
            lines.append(f"  fused q/k/v: {len(self.blocks)} weight(s) with {'/'.join(map(str, k))} row blocks, each "
                         f"block orthogonalized separately where the chain orthogonalizes (ortho_blocks=1: whole)")
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


def check_spec(what: str, spec: object) -> list[str]:
    """``head=`` / ``embedding=`` as a list of names: a str or a sequence of str, else ``TypeError``."""
    specs = [spec] if isinstance(spec, str) else spec
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, str) and s for s in specs):
        raise TypeError(f"assign_roles: {what}= must be a name or a list/tuple of non-empty names, got {spec!r}")
    return list(specs)


def check_roles(roles: object) -> dict[str, str]:
    """``roles=`` as a dict of glob -> role, else ``TypeError`` / ``ValueError`` naming the entry."""
    if roles is None:
        return {}
    if not isinstance(roles, Mapping):
        raise TypeError(f"assign_roles: roles= must be a mapping of name glob -> role, got {type(roles).__name__}")
    for pat, r in roles.items():
        if not isinstance(pat, str) or not pat:
            raise TypeError(f"assign_roles: roles keys must be non-empty name globs, got {pat!r}")
        if r not in ROLES:
            raise ValueError(f"assign_roles: roles[{pat!r}] must be one of {ROLES}, got {r!r}")
    return dict(roles)


def glob_claims(names: Mapping[int, list[str]], roles: Mapping[str, str], where: str
                ) -> list[tuple[int, str, str]]:
    """``(id, role, why)`` for every parameter a ``roles=`` glob matches (by any of its names). A glob
    that matches nothing is a ``ValueError``: a misspelt name would otherwise change nothing, silently."""
    out = []
    for pat, r in roles.items():
        hit = [pid for pid, pnames in names.items() if any(fnmatch.fnmatchcase(n, pat) for n in pnames)]
        if not hit:
            some = [ns[0] for ns in names.values()]
            raise ValueError(f"assign_roles: roles[{pat!r}] matches no parameter of {where}; "
                             f"names look like: {', '.join(some[:3] + some[-3:] if len(some) > 6 else some)}")
        out += [(pid, r, f"explicit roles[{pat!r}]") for pid in hit]
    return out


def _resolve(model: nn.Module, what: str, spec: str | Sequence[str]) -> set[int]:
    """Parameter ids named by ``spec``: module names (their ``weight``) or parameter names."""
    specs = check_spec(what, spec)
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


def fine_roles(named: Iterable[tuple[str, torch.Tensor]], kids: Callable[[str], set[str]],
               skip: Mapping[int, object]) -> dict[int, tuple[str, str]]:
    """The fine role of each weight the name rules of the module docstring cover: id -> (role, why).
    ``kids(path)`` names what the module at ``path`` holds (children and own parameters). Parameters in
    ``skip`` (named by an explicit rule, which wins) are not examined."""
    out: dict[int, tuple[str, str]] = {}
    for name, p in named:
        if p.ndim < 2 or id(p) in skip:
            continue
        path = name.split(".")
        unit_path = path[:-1] if path[-1] == "weight" else path
        unit = unit_path[-1] if unit_path else ""
        near = kids(".".join(unit_path[:-1]))
        in_experts = "experts" in path[:-1]
        if unit == "router" or (unit == "gate" and "experts" in near):
            if in_experts or p.ndim != 2:
                raise ValueError(f"assign_roles: parameter {name!r} (shape {tuple(p.shape)}) is named like a MoE "
                                 f"router but {'sits inside experts' if in_experts else 'is not a matrix'}; "
                                 f"name its role, e.g. roles={{{name!r}: 'matrix'}}")
            out[id(p)] = ("router", f"router: unit {unit!r}")
        elif unit in GATE_UNITS and near & set(DOWN_UNITS):
            out[id(p)] = ("gate", f"SwiGLU input side {unit!r}")
        elif unit in DOWN_UNITS and near & set(GATE_UNITS):
            out[id(p)] = ("down", f"SwiGLU output side {unit!r}")
        elif in_experts:
            out[id(p)] = ("expert", "inside 'experts'")
    return out


def _module_kids(model: nn.Module) -> Callable[[str], set[str]]:
    modules = dict(model.named_modules())

    def kids(path: str) -> set[str]:
        m = modules.get(path)
        return set() if m is None else set(dict(m.named_children())) | set(dict(m.named_parameters(recurse=False)))
    return kids


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
    roles = check_roles(roles)
    if head not in ("auto", None):
        check_spec("head", head)
    names, owners = _names_of(model)
    explicit: dict[int, tuple[str, str]] = {}  # id -> (role, why)

    def claim(pid: int, role: str, why: str) -> None:
        if pid in explicit and explicit[pid][0] != role:
            raise ValueError(f"assign_roles: parameter {names[pid][0]!r} is covered by two rules: "
                             f"{explicit[pid][1]} -> {explicit[pid][0]!r} and {why} -> {role!r}")
        explicit[pid] = (role, why)

    for pid, r, why in glob_claims(names, roles, type(model).__name__):
        claim(pid, r, why)
    if embedding:
        for pid in _resolve(model, "embedding", embedding):
            claim(pid, "embedding", "explicit embedding=")
    if head not in ("auto", None):
        for pid in _resolve(model, "head", head):
            claim(pid, "head", "explicit head=")
    # explicit rules win, so they are settled first
    finer = fine_roles(model.named_parameters(), _module_kids(model), explicit) if fine else {}
    head_id, head_why = _auto_head(model, owners, finer) if head == "auto" else (None, "")

    fused = {id(m.in_proj_weight) for m in model.modules()
             if isinstance(m, nn.MultiheadAttention) and m.in_proj_weight is not None}
    out, params, why, ties, blocks, frozen = {}, {}, {}, {}, {}, 0
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
        if pid in fused or fused_qkv_blocks(name, p) == 3:
            blocks[name] = 3  # q, k, v stacked by rows
    return RoleAssignment(out, params, why, frozen, ties, blocks)


def groups_from_params(params: Iterable, **routing: object) -> list[dict]:
    """Param groups from an iterable of tensors, of ``(name, tensor)`` pairs, or of group dicts — see
    :func:`optimlab.core.routing.route_params` (which this calls; ``routing`` are its keywords)."""
    from .routing import route_params  # routing builds on this module: imported when used

    return route_params(params, **routing).groups
