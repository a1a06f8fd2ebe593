"""Run checkpoints as bytes: encode the training state, and decode an untrusted blob with validation.

A checkpoint is a dict of tensors and plain data only, so it loads with
``torch.load(..., weights_only=True)`` -- nothing in it is unpickled as an object, and a blob
that names any other Python object (a ``__reduce__`` payload) is refused by torch's restricted
unpickler before anything runs. Layout (``format`` 1)::

    {"format": 1, "step": int, "skipped_steps": int,
     "model": {name: Tensor}, "optimizer": optimizer.state_dict(),
     "rng": {"torch":  uint8 tensor (torch.get_rng_state()),
             "numpy":  {"keys": int64 tensor [624], "pos": int, "has_gauss": int, "cached_gaussian": float},
             "random": {"version": 3, "state": int64 tensor [625], "gauss_next": float | None}}}

The run database may come from someone else (a shared drive, a colleague), so :func:`decode`
checks every key, type, shape, dtype and range before the runner applies any of it, and raises
a ``ValueError`` naming the run and the bad entry. The model and optimizer state dicts are then
validated by ``model.load_state_dict(strict=True)`` and the optimizer's own ``load_state_dict``.
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

__all__ = ["FORMAT", "Checkpoint", "capture_rng", "restore_rng", "encode", "decode", "apply"]

FORMAT = 1
_KEYS = ("format", "step", "skipped_steps", "model", "optimizer", "rng")
_MT_WORDS = 624  # Mersenne Twister state: 624 32-bit words (numpy's and Python's generators)


@dataclass
class Checkpoint:
    """A decoded, validated checkpoint (see the module docstring for the fields)."""

    step: int
    skipped_steps: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]


def capture_rng() -> dict[str, Any]:
    """The global torch, numpy and ``random`` generator states, as tensors and plain numbers."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "random": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                       "gauss_next": gauss_next}}


def restore_rng(rng: Mapping[str, Any]) -> None:
    """Set the global generators from :func:`capture_rng`'s (validated) output."""
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    r = rng["random"]
    random.setstate((r["version"], tuple(int(v) for v in r["state"].tolist()), r["gauss_next"]))


def encode(step: int, model: torch.nn.Module, optimizer: Any) -> bytes:
    """The checkpoint bytes of a run at ``step`` (model, optimizer and the global RNG states)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "step": int(step),
                "skipped_steps": int(getattr(optimizer, "skipped_steps", 0)),
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": capture_rng()}, buf)
    return buf.getvalue()


def _load_error(e: Exception) -> str:
    """The informative line of a ``torch.load`` error (torch wraps it in advice and ANSI codes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    if "WeightsUnpickler error:" in text:  # e.g. "Unsupported global: GLOBAL getattr was not ..."
        text = text.split("WeightsUnpickler error:", 1)[1].split(". Please use", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "empty or truncated data"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _short(value: Any) -> str:
    return _clip(repr(value), 80)


class _Check:
    """Raises ``ValueError("run N: checkpoint <entry> ...")`` for the first bad entry."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id

    def fail(self, entry: str, problem: str) -> None:
        where = f"checkpoint {entry}" if entry else "checkpoint"
        raise ValueError(f"run {self.run_id}: {where} {problem}; refusing to resume it "
                         f"(the stored run is unchanged; restart=True / --restart trains it afresh)")

    def mapping(self, entry: str, value: Any, keys: tuple[str, ...]) -> None:
        if not isinstance(value, dict):
            self.fail(entry, f"must be a dict, got {type(value).__name__} {_short(value)}")
        if set(value) != set(keys):
            missing, extra = sorted(set(keys) - set(value), key=str), sorted(set(value) - set(keys), key=str)
            self.fail(entry, f"must have keys {list(keys)}, got missing {missing}, unexpected {extra}")

    def integer(self, entry: str, value: Any, lo: int, hi: int | None = None) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(entry, f"must be an int, got {type(value).__name__} {_short(value)}")
        if value < lo or (hi is not None and value > hi):
            self.fail(entry, f"must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}")

    def tensor(self, entry: str, value: Any, dtype: torch.dtype, shape: tuple[int, ...],
               lo: int | None = None, hi: int | None = None) -> None:
        if not isinstance(value, torch.Tensor):
            self.fail(entry, f"must be a tensor, got {type(value).__name__} {_short(value)}")
        if value.dtype != dtype or tuple(value.shape) != shape or value.layout != torch.strided:
            self.fail(entry, f"must be a {dtype} tensor of shape {list(shape)}, got {value.dtype} "
                             f"of shape {list(value.shape)}")
        if value.device.type != "cpu":
            self.fail(entry, f"must be on the CPU, got device {value.device}")
        if lo is not None and value.numel() and (int(value.min()) < lo or int(value.max()) > hi):
            self.fail(entry, f"values must be in [{lo}, {hi}], got [{int(value.min())}, {int(value.max())}]")


def decode(blob: Any, run_id: int, step: int) -> Checkpoint:
    """Load and validate checkpoint bytes of run ``run_id`` stored at ``step``; ValueError if bad.

    Only tensors and plain containers are accepted (``weights_only=True``); any other object in the
    pickle stream is refused without being constructed."""
    check = _Check(run_id)
    if not isinstance(blob, (bytes, bytearray)):
        check.fail("blob", f"must be bytes, got {type(blob).__name__}")
    try:
        state = torch.load(io.BytesIO(bytes(blob)), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad bytes
        check.fail("blob", f"is not a plain tensor checkpoint ({type(e).__name__}: "
                           f"{_clip(_load_error(e), 200)})")
    check.mapping("", state, _KEYS)
    check.integer("'format'", state["format"], FORMAT, FORMAT)
    check.integer("'step'", state["step"], 0)
    if state["step"] != step:
        check.fail("'step'", f"must equal the stored checkpoint step {step}, got {state['step']}")
    check.integer("'skipped_steps'", state["skipped_steps"], 0, state["step"])
    model = state["model"]
    if not isinstance(model, dict):
        check.fail("'model'", f"must be a dict of tensors, got {type(model).__name__}")
    for name, value in model.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            check.fail(f"'model' entry {_short(name)}", f"must map a str to a tensor, got {type(value).__name__}")
    optimizer = state["optimizer"]
    if not isinstance(optimizer, dict) or not {"state", "param_groups"} <= set(optimizer):
        check.fail("'optimizer'", f"must be an optimizer state dict (keys 'state', 'param_groups'), got "
                                  f"{type(optimizer).__name__} {_short(optimizer)}")

    rng = state["rng"]
    check.mapping("'rng'", rng, ("torch", "numpy", "random"))
    torch_state = torch.get_rng_state()
    check.tensor("rng 'torch'", rng["torch"], torch_state.dtype, tuple(torch_state.shape))
    n = rng["numpy"]
    check.mapping("rng 'numpy'", n, ("keys", "pos", "has_gauss", "cached_gaussian"))
    check.tensor("rng numpy 'keys'", n["keys"], torch.int64, (_MT_WORDS,), 0, 2**32 - 1)
    check.integer("rng numpy 'pos'", n["pos"], 0, _MT_WORDS)
    check.integer("rng numpy 'has_gauss'", n["has_gauss"], 0, 1)
    if not isinstance(n["cached_gaussian"], float):
        check.fail("rng numpy 'cached_gaussian'", f"must be a float, got {_short(n['cached_gaussian'])}")
    r = rng["random"]
    check.mapping("rng 'random'", r, ("version", "state", "gauss_next"))
    check.integer("rng random 'version'", r["version"], 3, 3)
    check.tensor("rng random 'state'", r["state"], torch.int64, (_MT_WORDS + 1,), 0, 2**32 - 1)
    if int(r["state"][-1]) > _MT_WORDS:  # the last word is the position in the other 624
        check.fail("rng random 'state'", f"position must be in [0, {_MT_WORDS}], got {int(r['state'][-1])}")
    if r["gauss_next"] is not None and not isinstance(r["gauss_next"], float):
        check.fail("rng random 'gauss_next'", f"must be a float or None, got {_short(r['gauss_next'])}")
    return Checkpoint(step=state["step"], skipped_steps=state["skipped_steps"], model=model,
                      optimizer=optimizer, rng=rng)


def apply(ckpt: Checkpoint, run_id: int, model: torch.nn.Module, optimizer: Any) -> None:
    """Load a decoded checkpoint into ``model`` and ``optimizer`` and set the global RNG states.

    The model's state dict must match exactly (keys, shapes, dtypes: a silent cast would change
    the run); the optimizer's ``load_state_dict`` validates its own state. Any mismatch is a
    ValueError naming the run."""
    check = _Check(run_id)
    expected = model.state_dict()
    for name, value in ckpt.model.items():
        if name in expected and (value.dtype != expected[name].dtype or value.shape != expected[name].shape):
            check.fail(f"'model' entry {name!r}", f"must be {expected[name].dtype} of shape "
                                                  f"{list(expected[name].shape)}, got {value.dtype} of "
                                                  f"shape {list(value.shape)}")
    for entry, target, state in (("'model'", model, ckpt.model), ("'optimizer'", optimizer, ckpt.optimizer)):
        try:
            target.load_state_dict(state)  # nn.Module: strict=True (missing or unexpected keys raise)
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            reason = " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
            check.fail(entry, f"does not fit this {type(target).__name__} ({_clip(reason, 300)})")
    if hasattr(optimizer, "skipped_steps"):
        optimizer.skipped_steps = ckpt.skipped_steps
    restore_rng(ckpt.rng)
