"""Role routing without a module: bare tensors, ``(name, tensor)`` pairs, and param-group dicts.

Named parameters (``model.named_parameters()``, lists of ``(name, tensor)`` pairs, groups with
``"param_names"``) get the roles :func:`~optimlab.core.roles.assign_roles` would give, decided from names
and shapes alone, in this order:

1. explicit rules, as with a module: ``roles={"glob": role}`` (matched against every name of a tensor),
   ``embedding=`` / ``head=`` (a parameter name, or a module name meaning its ``.weight``); two rules with
   different roles, or a glob or name that matches nothing, is a ``ValueError``;
2. ``ndim < 2`` → ``vector``;
3. ``embedding``: a tensor whose *unit* (the module name before ``.weight``, or the tensor's own name)
   contains ``emb`` (``tok_emb``, ``embed_tokens``, ``word_embeddings``, ``pos_embedding``) or is ``wte``,
   ``wpe`` or ``tok`` — not ``time_embed.0.weight``, a Linear inside a block named for embeddings.
   A tensor given under several names
   (``named_parameters(remove_duplicate=False)`` with a tied head) is one parameter, an embedding if any
   of its names says so;
4. the fine roles (``router``, ``gate``, ``down``, ``expert``), for recipes that have them, by the same
   unit / container names as with a module (the container's contents read off the names);
5. ``head`` (``head="auto"``), among the remaining trainable 2-D tensors: the last whose rows equal the
   vocabulary (the rows of a name-found embedding that is not positional — no ``pos`` / ``wpe`` in its
   name); else the last whose unit is head-like (``lm_head``, ``head``, ``*_head``, ``classifier``,
   ``output``, ``fc_out``, ``score``); else the last 2-D tensor — unless an embedding was found and that
   tensor's rows are the embedding width, i.e. it feeds a head tied to the embedding (which
   ``named_parameters()`` yields once, as the embedding);
6. any other tensor with ``ndim >= 2`` → ``matrix``. A fused q/k/v weight of shape ``(3E, E)``
   (``*.in_proj_weight``, ``*.c_attn.weight``, ``*.qkv.weight``...: :func:`~optimlab.core.roles.fused_qkv_blocks`)
   records 3 row blocks.

Frozen tensors (``requires_grad=False``) are routed too — torch.optim keeps what it is given — but are
never chosen as the head (with a module they are skipped).

With a module, step 3 is "owned by ``nn.Embedding``" and step 5 "the tied / vocabulary-sized / last
``nn.Linear``"; on the usual layouts (GPT-style LMs tied or not, MLPs, CNNs, MoE blocks) both give the
same roles. Names are a heuristic: ``roles=``, ``head=`` and ``embedding=`` override them.

Bare tensors carry neither names nor modules: ``ndim >= 2`` → ``matrix``, else ``vector``.
:func:`suspects` finds 2-D tensors that look like an embedding or a head, which ``create`` reports with a
:class:`~optimlab.core.roles.RoleWarning` for recipes where the ``matrix`` update differs.

Param-group dicts keep their own hyperparameters. A group with ``"role"`` is taken as it is; one with
``"param_names"`` (or ``(name, tensor)`` pairs as ``"params"``) is routed by names — the head search runs
over the named tensors of all such groups together — and split by role; one of bare tensors is split by
``ndim``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .roles import (BLOCKS_KEY, ROLES, fused_qkv_blocks, RoleAssignment, check_roles, check_spec, fine_roles,
                    glob_claims)

__all__ = ["Routing", "route_params", "assign_named", "suspects", "check_row_blocks"]

HEAD_UNITS = ("lm_head", "head", "classifier", "output", "fc_out", "score")
_EMPTY = ("optimizer got an empty parameter list (an exhausted generator? model.parameters() and "
          "model.named_parameters() can be iterated only once)")


@dataclass
class Routing:
    """What :func:`route_params` decided: the param groups, the name-based assignment (``None`` when no
    names were given) and the indices of bare tensors that look like an embedding or head."""

    groups: list[dict]
    assignment: RoleAssignment | None = None
    suspects: list[tuple[int, str]] = field(default_factory=list)


def _parts(name: str) -> list[str]:
    parts = name.lower().split(".")
    return parts[:-1] if parts[-1] == "weight" and len(parts) > 1 else parts


def _is_embedding_name(name: str) -> bool:
    # the unit only: ``time_embed.0.weight`` (a Linear inside a block named for embedding) is no embedding
    unit = _parts(name)[-1]
    return "emb" in unit or unit in ("wte", "wpe", "tok")


def _is_positional(name: str) -> bool:
    unit = _parts(name)[-1]
    return "pos" in unit or unit == "wpe"


def _is_head_name(name: str) -> bool:
    unit = _parts(name)[-1]
    return unit in HEAD_UNITS or unit.endswith("_head")


def _resolve_names(names: Mapping[int, list[str]], what: str, spec: object) -> set[int]:
    """Ids named by ``spec``: a parameter name, or a module name meaning its ``.weight``."""
    ids = set()
    for s in check_spec(what, spec):
        hit = {pid for pid, ns in names.items() if s in ns or f"{s}.weight" in ns}
        if not hit:
            some = [ns[0] for ns in names.values()]
            raise ValueError(f"assign_roles: {what}={s!r} names no parameter (nor module with a .weight) among the "
                             f"{len(some)} named parameters; the last are: {', '.join(some[-6:])}")
        ids |= hit
    return ids


def _name_kids(all_names: Iterable[str]) -> Callable[[str], set[str]]:
    kids: dict[str, set[str]] = {}
    for n in all_names:
        path = n.split(".")
        for i in range(len(path)):
            kids.setdefault(".".join(path[:i]), set()).add(path[i])
    return lambda path: kids.get(path, set())


def _auto_head(cands: list[tuple[str, Tensor]], embs: list[tuple[str, Tensor]]) -> tuple[int | None, str]:
    if not cands:
        return None, ""
    tok = [(n, e) for n, e in embs if not _is_positional(n)] or embs
    vocab = {e.shape[0] for _, e in tok}
    match = [(n, p) for n, p in cands if p.shape[0] in vocab]
    if match:
        return id(match[-1][1]), f"head: {match[-1][0]!r} maps to the vocabulary ({match[-1][1].shape[0]} rows)"
    named = [(n, p) for n, p in cands if _is_head_name(n)]
    if named:
        return id(named[-1][1]), f"head: {named[-1][0]!r} is named like a head"
    n, p = cands[-1]
    if tok and p.shape[0] in {e.shape[1] for _, e in tok}:
        return None, ""  # it feeds a head tied to the embedding
    return id(p), f"head: last 2-D parameter {n!r}"


def assign_named(named: Iterable[tuple[str, Tensor]], *, head: str | Sequence[str] | None = "auto",
                 embedding: str | Sequence[str] = (), roles: Mapping[str, str] | None = None,
                 fine: bool = False) -> RoleAssignment:
    """Give every ``(name, tensor)`` exactly one role by the name rules of the module docstring."""
    roles = check_roles(roles)
    names: dict[int, list[str]] = {}
    tensors: dict[int, Tensor] = {}
    seen: dict[str, Tensor] = {}
    for n, p in named:
        if n in seen:
            if seen[n] is not p:
                raise ValueError(f"params: parameter name {n!r} is given twice, for two different tensors "
                                 f"(shapes {tuple(seen[n].shape)} and {tuple(p.shape)})")
            continue
        seen[n] = p
        names.setdefault(id(p), []).append(n)
        tensors[id(p)] = p
    explicit: dict[int, tuple[str, str]] = {}

    def claim(pid: int, role: str, why: str) -> None:
        if pid in explicit and explicit[pid][0] != role:
            raise ValueError(f"assign_roles: parameter {names[pid][0]!r} is covered by two rules: "
                             f"{explicit[pid][1]} -> {explicit[pid][0]!r} and {why} -> {role!r}")
        explicit[pid] = (role, why)

    for pid, r, why in glob_claims(names, roles, "the named parameters"):
        claim(pid, r, why)
    if embedding:
        for pid in _resolve_names(names, "embedding", embedding):
            claim(pid, "embedding", "explicit embedding=")
    if head not in ("auto", None):
        for pid in _resolve_names(names, "head", head):
            claim(pid, "head", "explicit head=")
    by_name = {pid: next((n for n in ns if _is_embedding_name(n)), None) for pid, ns in names.items()}
    emb = {pid: n for pid, n in by_name.items()
           if n is not None and tensors[pid].ndim >= 2 and pid not in explicit}
    finer = fine_roles([(ns[0], tensors[pid]) for pid, ns in names.items() if pid not in emb],
                       _name_kids(seen), explicit) if fine else {}
    head_id, head_why = None, ""
    if head == "auto":
        embs = [(names[pid][0], tensors[pid]) for pid in tensors if tensors[pid].ndim == 2
                and (pid in emb or explicit.get(pid, ("",))[0] == "embedding")]
        cands = [(ns[0], tensors[pid]) for pid, ns in names.items() if tensors[pid].ndim == 2
                 and tensors[pid].requires_grad and pid not in explicit and pid not in emb and pid not in finer]
        head_id, head_why = _auto_head(cands, embs)

    out, params, why, ties, blocks = {}, {}, {}, {}, {}
    for pid, ns in names.items():
        p, name = tensors[pid], ns[0]
        if len(ns) > 1:
            ties[name] = ns[1:]
        if pid in explicit:
            role, reason = explicit[pid]
        elif p.ndim < 2:
            role, reason = "vector", f"{p.ndim}-D"
        elif pid in emb:
            tied = f"; tied: also named {', '.join(map(repr, ns[1:]))}" if len(ns) > 1 else ""
            role, reason = "embedding", f"named like an embedding ({emb[pid]!r}){tied}"
        elif pid == head_id:
            role, reason = "head", head_why
        elif pid in finer:
            role, reason = finer[pid]
        else:
            role, reason = "matrix", f"{p.ndim}-D"
        out[name], params[name], why[name] = role, p, reason
        if fused_qkv_blocks(name, p) == 3:
            blocks[name] = 3  # q, k, v stacked by rows, as nn.MultiheadAttention's
    return RoleAssignment(out, params, why, 0, ties, blocks)


def suspects(tensors: Sequence[Tensor]) -> list[tuple[int, str]]:
    """Indices (and why) of bare 2-D tensors that look like an embedding or an output head.

    In torch's layout both an ``nn.Embedding`` weight and an ``nn.Linear`` head are ``(vocab, width)``:
    a tensor is suspect when its rows are at least 8 times its columns and more than twice every
    dimension of every other matrix of another shape, or when the first and last matrices share one
    shape ``(V, d)`` whose ``V`` no other matrix has (an untied embedding and head). A plain MLP's
    widths reappear from layer to layer, so none of its matrices is suspect.
    """
    mats = [(i, t) for i, t in enumerate(tensors) if t.ndim >= 2]
    if len(mats) < 2:
        return []
    view = {i: (t.shape[0], math.prod(t.shape[1:])) for i, t in mats}
    out: dict[int, str] = {}
    for i, t in mats:
        others = [max(view[j]) for j, u in mats if u.shape != t.shape]
        if t.ndim == 2 and others and t.shape[0] >= 8 * t.shape[1] and t.shape[0] > 2 * max(others):
            out[i] = f"(shape {tuple(t.shape)}): {t.shape[0]} rows, far more than any other matrix dimension"
    two_d = [i for i, t in mats if t.ndim == 2]
    if len(two_d) >= 3:
        f, last = two_d[0], two_d[-1]
        v, d = tensors[f].shape
        if (tensors[last].shape == tensors[f].shape and v != d
                and all(v not in view[j] for j in view if j not in (f, last))):
            for i in (f, last):
                out.setdefault(i, f"(shape {(v, d)}): the first and last matrices share it, and no other has {v}")
    return sorted(out.items())


def _entry_kind(i: int, x: object, where: str) -> str:
    if isinstance(x, Tensor):
        return "tensor"
    if isinstance(x, dict):
        return "group"
    if isinstance(x, (tuple, list)) and len(x) == 2 and isinstance(x[1], Tensor):
        if not isinstance(x[0], str):
            raise TypeError(f"{where}[{i}]: a (name, tensor) pair needs a str name, got {x[0]!r}")
        if not x[0]:
            raise ValueError(f"{where}[{i}]: a (name, tensor) pair has an empty name")
        return "pair"
    desc = f"a {len(x)}-tuple" if isinstance(x, tuple) else type(x).__name__
    raise TypeError(f"{where}[{i}] is {desc} ({x!r:.60}), not a Tensor, a (name, Tensor) pair or a param-group dict")


def _as_list(params: object, where: str) -> list:
    if isinstance(params, Tensor):
        raise TypeError(f"{where} must be an iterable of tensors, (name, tensor) pairs or param-group dicts, "
                        f"got one Tensor of shape {tuple(params.shape)}; wrap it in a list")
    if isinstance(params, (str, bytes)):
        raise TypeError(f"{where} must be an iterable of tensors, (name, tensor) pairs or param-group dicts, "
                        f"got the string {params!r}")
    if isinstance(params, Mapping):
        if "params" in params:
            return [params]  # one param group, as torch.optim takes it
        raise TypeError(f"{where} is a mapping with keys {list(params)[:4]}; pass dict.items() or "
                        f"model.named_parameters() for named tensors, or a list of param-group dicts")
    try:
        return list(params)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{where} must be an iterable of tensors, (name, tensor) pairs or param-group dicts, "
                        f"got {type(params).__name__}") from None


def _group_entries(i: int, g: dict) -> tuple[list[Tensor], list[str] | None]:
    where = f"param group {i}"
    if "params" not in g:
        raise ValueError(f"{where} has no 'params' (keys: {sorted(map(str, g))})")
    items = _as_list(g["params"], f"{where}['params']")
    kinds = {_entry_kind(j, x, f"{where}['params']") for j, x in enumerate(items)}
    if "group" in kinds or len(kinds) > 1:
        raise TypeError(f"{where}['params'] must be all tensors or all (name, tensor) pairs, got {sorted(kinds)}")
    names = g.get("param_names")
    if kinds == {"pair"}:
        if names is not None:
            raise ValueError(f"{where} gives both (name, tensor) pairs and 'param_names'; give one")
        return [t for _, t in items], [n for n, _ in items]
    if names is None:
        return items, None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{where}['param_names'] must be a list of non-empty str, got {names!r:.80}")
    if len(names) != len(items):
        raise ValueError(f"{where} has {len(items)} params but {len(names)} param_names")
    return items, list(names)


def _check_unique(tensors: Sequence[Tensor], where: str) -> None:
    first: dict[int, int] = {}
    for i, t in enumerate(tensors):
        if id(t) in first:
            raise ValueError(f"{where}: the same tensor (shape {tuple(t.shape)}) is given twice, as entries "
                             f"{first[id(t)]} and {i}")
        first[id(t)] = i


def _by_ndim(base: dict, tensors: list[Tensor]) -> list[dict]:
    return [{**base, "params": [t for t in tensors if (t.ndim >= 2) == (role == "matrix")], "role": role}
            for role in ("matrix", "vector") if any((t.ndim >= 2) == (role == "matrix") for t in tensors)]


def route_params(params: Iterable, *, head: str | Sequence[str] | None = "auto",
                 embedding: str | Sequence[str] = (), roles: Mapping[str, str] | None = None,
                 fine: bool = False, split: Collection[str] = ()) -> Routing:
    """Route a parameter list (see the module docstring). ``split``: the roles whose fused row-block
    tensors get a group of their own with ``ortho_blocks`` (see :meth:`RoleAssignment.groups`)."""
    items = _as_list(params, "params")
    if not items:
        raise ValueError(_EMPTY)
    kinds = [_entry_kind(i, x, "params") for i, x in enumerate(items)]
    if len(set(kinds)) > 1:
        a = kinds.index(kinds[0])
        b = next(i for i, k in enumerate(kinds) if k != kinds[0])
        raise TypeError(f"params must be all tensors, all (name, tensor) pairs or all param-group dicts, not a mix: "
                        f"params[{a}] is a {kinds[a]}, params[{b}] a {kinds[b]}")
    explicit = head != "auto" or bool(embedding) or bool(roles)
    if kinds[0] == "tensor":
        if explicit:
            raise TypeError("head=, embedding= and roles= need an nn.Module or named parameters "
                            "(model.named_parameters()), not bare tensors")
        _check_unique(items, "params")
        return Routing(_by_ndim({}, items), None, suspects(items))
    if kinds[0] == "pair":
        a = assign_named(items, head=head, embedding=embedding, roles=roles, fine=fine)
        return Routing(a.groups(split), a)
    # param-group dicts
    parsed = [_group_entries(i, g) for i, g in enumerate(items)]
    named = [(n, t) for g, (ts, ns) in zip(items, parsed) if ns is not None and "role" not in g
             for n, t in zip(ns, ts)]
    if explicit and not named:
        raise TypeError("head=, embedding= and roles= need an nn.Module or named parameters: give the groups "
                        "'param_names' (or (name, tensor) pairs)")
    a = assign_named(named, head=head, embedding=embedding, roles=roles, fine=fine) if named else None
    out, plain = [], []
    for i, (g, (ts, ns)) in enumerate(zip(items, parsed)):
        if "role" in g:
            if g["role"] not in ROLES:
                raise ValueError(f"param group {i}: role must be one of {ROLES}, got {g['role']!r}")
            out.append({**g, "params": ts, **({"param_names": ns} if ns is not None else {})})
        elif ns is None:
            plain += ts
            out += _by_ndim(g, ts)
        else:
            mine = set(ns)
            sub = RoleAssignment({n: r for n, r in a.roles.items() if n in mine}, a.params, a.why,
                                 blocks=a.blocks)
            base = {k: v for k, v in g.items() if k not in ("params", "param_names")}
            out += [{**base, **sg} for sg in sub.groups(() if BLOCKS_KEY in g else split)]
    return Routing(out, a, suspects(plain))


def check_row_blocks(groups: Iterable[dict], owner: str) -> None:
    """``ValueError`` naming the parameter when a group's ``ortho_blocks`` does not divide a matrix's rows
    (checked at construction, so no step ever half-runs)."""
    for g in groups:
        k = g.get(BLOCKS_KEY, 1)
        if not isinstance(k, int) or k <= 1:
            continue
        for i, p in enumerate(g["params"]):
            rows = p.shape[1] if g.get("ortho_3d") == "slices" and p.ndim == 3 else p.shape[0]
            if p.ndim >= 2 and rows % k:
                names = g.get("param_names")
                label = repr(names[i]) if names else f"#{i} of the {g['role']!r} group"
                raise ValueError(f"{owner}: ortho_blocks={k} must divide the rows of every matrix of its group; "
                                 f"parameter {label} has shape {tuple(p.shape)} ({rows} rows)")
