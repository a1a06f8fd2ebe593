"""Search spaces for sweeps: parse ``NAME=SPEC`` strings and check them against an optimizer's specs.

A space maps hyperparameter names to ``(kind, low, high)`` (kinds ``log``, ``float``, ``int``) or
``("choice", [values...])``. ``parse_space`` reads the command-line form
(``lr=log:1e-4:1e-1``, ``nesterov=choice:True,False``); ``check_space`` validates a space against
the optimizer's hyperparameter specs, naming the optimizer, the hyperparameter and the value.
"""

from __future__ import annotations

import ast
import difflib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..core.registry import get_recipe
from .store import canonical_json

if TYPE_CHECKING:
    import optuna

__all__ = ["KINDS", "parse_space", "check_space"]

#: The kinds of a search-space entry: ``(kind, low, high)`` for the numeric ones,
#: ``("choice", [values...])`` for a categorical one.
KINDS = ("log", "float", "int", "choice")

_PRIMITIVE = (type(None), bool, int, float, str)


# ---------------------------------------------------------------------------- the search space

@dataclass(frozen=True)
class _Param:
    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple = ()
    codes: tuple = ()  # what Optuna sees for each choice (the choice itself, or its repr)

    def spec(self) -> tuple:
        return ("choice", list(self.choices)) if self.kind == "choice" else (self.kind, self.low, self.high)

    def decode(self, value: Any) -> Any:
        if self.kind == "choice" and self.codes != self.choices:
            return self.choices[self.codes.index(value)]
        return value

    def suggest(self, trial: "optuna.Trial") -> Any:
        if self.kind == "log":
            if isinstance(self.low, int) and isinstance(self.high, int):
                return trial.suggest_int(self.name, self.low, self.high, log=True)
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high)
        return self.decode(trial.suggest_categorical(self.name, list(self.codes)))


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as polar_express or bfloat16


def _parse_entry(name: str, text: str) -> tuple:
    usage = (f"sweep space: {name}={text!r}: expected KIND:LOW:HIGH with KIND log, float or int "
             f"(e.g. lr=log:1e-4:1e-1), or choice:V1,V2,... (e.g. nesterov=choice:True,False)")
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in KINDS or not rest.strip():
        raise ValueError(usage)
    if kind == "choice":
        try:
            values = ast.literal_eval("[" + rest + "]")
        except (ValueError, SyntaxError):
            values = [_literal(v.strip()) for v in rest.split(",")]
        if any(v == "" for v in values):
            raise ValueError(usage)
        return ("choice", values)
    parts = rest.split(":")
    if len(parts) != 2:
        raise ValueError(usage)
    bounds = []
    for part in parts:
        try:
            number = float(part)
        except ValueError:
            raise ValueError(f"{usage}; {part.strip()!r} is not a number") from None
        if kind == "int" or (kind == "log" and number.is_integer() and
                             all(_looks_int(p) for p in parts)):
            if not number.is_integer():
                raise ValueError(f"{usage}; {part.strip()!r} is not an integer")
            number = int(number)
        bounds.append(number)
    return (kind, bounds[0], bounds[1])


def _looks_int(text: str) -> bool:
    text = text.strip().lstrip("+-")
    return text.isdigit()


def parse_space(items: Sequence[str]) -> dict[str, tuple]:
    """A search space from command-line strings ``NAME=KIND:LOW:HIGH`` (KIND ``log``, ``float``,
    ``int``) or ``NAME=choice:V1,V2,...`` (values read as Python literals, else as bare words).

    ``parse_space(["lr=log:1e-4:1e-1", "momentum=choice:0.0,0.9"])`` ->
    ``{"lr": ("log", 0.0001, 0.1), "momentum": ("choice", [0.0, 0.9])}``. A ``log`` range whose
    bounds are both written as integers (``ns_steps=log:1:16``) samples integers. Malformed text
    or a repeated name: ValueError naming the entry.
    """
    if isinstance(items, str):
        items = [items]
    out: dict[str, tuple] = {}
    for item in items or []:
        if not isinstance(item, str):
            raise ValueError(f"sweep space: expected NAME=SPEC strings, got {item!r}")
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name or not name.isidentifier():
            raise ValueError(f"sweep space: {item!r} must be NAME=SPEC, e.g. lr=log:1e-4:1e-1 or "
                             f"nesterov=choice:True,False")
        if name in out:
            raise ValueError(f"sweep space: {name!r} is given twice")
        out[name] = _parse_entry(name, text)
    return out


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_value(optimizer: str, name: str, spec: Any, value: Any, what: str) -> None:
    try:
        spec.check(optimizer, name, value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"sweep space for {optimizer}: {what} is outside what {name} accepts: "
                         f"{e}") from None


def _normalize(optimizer: str, name: str, entry: Any, hspec: Any) -> _Param:
    if isinstance(entry, str):
        entry = _parse_entry(name, entry)
    if isinstance(entry, list) and (not entry or entry[0] not in KINDS):
        entry = ("choice", entry)  # a bare list of values
    if not isinstance(entry, (tuple, list)) or not entry or entry[0] not in KINDS:
        raise ValueError(f"sweep space for {optimizer}: {name}: expected (kind, low, high) with kind "
                         f"log, float or int, or ('choice', [values]); got {entry!r}")
    kind = entry[0]
    if kind == "choice":
        if len(entry) != 2 or not isinstance(entry[1], (list, tuple)) or len(entry[1]) == 0:
            raise ValueError(f"sweep space for {optimizer}: {name}: expected ('choice', [v1, v2, ...]) "
                             f"with at least one value, got {entry!r}")
        choices = tuple(entry[1])
        for c in choices:
            _check_value(optimizer, name, hspec, c, f"{name}=choice value {c!r}")
        try:
            canonical_json(list(choices))
        except TypeError as e:
            raise ValueError(f"sweep space for {optimizer}: {name}: choices must be JSON-friendly "
                             f"values ({e})") from None
        if all(isinstance(c, _PRIMITIVE) for c in choices):
            codes = choices
        else:
            codes = tuple(repr(c) for c in choices)
        if len(set(codes)) != len(codes):
            raise ValueError(f"sweep space for {optimizer}: {name}: repeated choice in {list(choices)!r}")
        return _Param(name, "choice", choices=choices, codes=codes)
    if len(entry) != 3:
        raise ValueError(f"sweep space for {optimizer}: {name}: expected ({kind!r}, low, high), "
                         f"got {entry!r}")
    low, high = entry[1], entry[2]
    if not (_is_number(low) and _is_number(high)):
        raise ValueError(f"sweep space for {optimizer}: {name}: low and high must be finite numbers, "
                         f"got {low!r}, {high!r}")
    if not low < high:
        raise ValueError(f"sweep space for {optimizer}: {name}: low must be below high, "
                         f"got {kind}:{low!r}:{high!r}")
    allowed = {"float": ("log", "float"), "int": ("log", "int")}.get(hspec.kind, ())
    if kind not in allowed:
        hint = (f"use one of {', '.join(allowed)}" if allowed else "use ('choice', [values])")
        raise ValueError(f"sweep space for {optimizer}: {name} is a {hspec.kind} hyperparameter; "
                         f"a {kind!r} range does not fit it ({hint})")
    if kind == "log" and low <= 0:
        raise ValueError(f"sweep space for {optimizer}: {name}: a log range needs low > 0, "
                         f"got {kind}:{low!r}:{high!r}")
    if hspec.kind == "int" or kind == "int":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"sweep space for {optimizer}: {name}: an integer range needs integer "
                             f"bounds, got {kind}:{low!r}:{high!r}")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    for bound, value in (("low", low), ("high", high)):
        _check_value(optimizer, name, hspec, value, f"{name}={kind}:{entry[1]!r}:{entry[2]!r} ({bound})")
    return _Param(name, kind, low=low, high=high)


def check_space(optimizer: str, space: Mapping[str, Any]) -> dict[str, tuple]:
    """Validate ``space`` for ``optimizer`` and return it normalised (name -> spec tuple).

    Each name must be a hyperparameter that ``optimlab.create(model, optimizer, name=...)``
    accepts (``get_recipe(optimizer).main_specs()``), and both ends of a range, and every choice,
    must lie in that hyperparameter's valid range. Errors: ValueError naming the optimizer, the
    hyperparameter and the value.
    """
    return {p.name: p.spec() for p in _params(optimizer, space)}


def _params(optimizer: str, space: Mapping[str, Any]) -> list[_Param]:
    if isinstance(space, (list, tuple)):
        space = parse_space(space)
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"sweep: the search space must be a non-empty dict name -> spec, got {space!r}")
    specs = get_recipe(optimizer).main_specs()  # unknown optimizer: ValueError with close matches
    out = []
    for name, entry in space.items():
        if name not in specs:
            close = difflib.get_close_matches(str(name), list(specs), n=3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"sweep space: {name!r} is not a hyperparameter of optimizer "
                             f"{optimizer!r}; {hint}its hyperparameters are {', '.join(sorted(specs))}")
        out.append(_normalize(optimizer, name, entry, specs[name]))
    return out
