"""Claims: a seed paper's quantitative statement, the experiment that tests it, and its verdict.

A :class:`Claim` names the paper (title and arXiv id), quotes the statement as a number, lists the
optimlab optimizers the experiment needs, and states its verdict rule with an explicit margin.
``claim.run(fast, seeds, out_dir)`` runs the experiment on every seed and returns
:class:`Evidence`: the measured numbers per seed, the verdict, the margin, a short explanation and
the figure (saved as a PNG).

Verdicts:

- ``"holds"``: every seed passes the rule.
- ``"does not hold"``: no seed passes.
- ``"inconclusive"``: the seeds disagree, or the experiment could not reach the regime the claim
  is about (stated in the explanation), or a hyperparameter the verdict rests on was tuned and its
  best value sits at the edge of its grid (``Outcome.grid_edges``; the optimum may lie outside the
  grid, so neither "holds" nor "does not hold" is supported).
- ``"pending"``: the experiment cannot run yet: an optimizer it needs is not registered
  (``optimlab.available()``) or the protocol is not implemented; ``missing`` says what.

Protocols are fixed from the paper before running; nothing is tuned until a claim passes.
"""
from __future__ import annotations

import contextlib
import difflib
import math
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

VERDICTS = ("holds", "does not hold", "inconclusive", "pending")


@dataclass
class Outcome:
    """What an experiment function returns to :meth:`Claim.run`.

    per_seed: {seed: {measurement name: value}} (the numbers the verdict is computed from).
    passed: {seed: whether that seed passes the rule}; the verdict follows from these unless
        ``verdict`` is given (e.g. "inconclusive" when the regime was not reached).
    explanation: one or two sentences with the key numbers. figure: a matplotlib Figure.
    details: anything else worth keeping (curves, configuration), JSON-friendly.
    grid_edges: one line per tuned hyperparameter whose best value is the first or last of its grid
        (e.g. "muon lr=0.02 at the high edge of [0.01 .. 0.02]"); any makes the verdict inconclusive.
    """

    per_seed: dict[int, dict[str, float]]
    passed: dict[int, bool]
    explanation: str
    figure: Any = None
    details: dict[str, Any] = field(default_factory=dict)
    verdict: str | None = None
    grid_edges: list[str] = field(default_factory=list)


@dataclass
class Evidence:
    """The result of running a claim.

    claim_id, fast (which protocol), seeds; measurements: {seed: {name: value}};
    verdict: one of ``VERDICTS``; margin: the rule's tolerance in words and numbers;
    explanation: what was measured and why the verdict follows; figure_path: the PNG (None when
    pending); missing: what a pending claim needs; seconds: wall-clock time of the run.
    """

    claim_id: str
    verdict: str
    margin: str
    explanation: str
    fast: bool
    seeds: list[int]
    measurements: dict[int, dict[str, float]] = field(default_factory=dict)
    passed: dict[int, bool] = field(default_factory=dict)
    figure_path: str | None = None
    missing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        head = f"{self.claim_id}: {self.verdict.upper()} ({'fast' if self.fast else 'full'}, seeds {self.seeds}, "
        head += f"{self.seconds:.1f} s)"
        lines = [head, f"  margin: {self.margin}", f"  {self.explanation}"]
        if self.missing and self.verdict != "pending":  # a pending claim's explanation already lists them
            lines.append(f"  missing: {', '.join(self.missing)}")
        for seed, values in self.measurements.items():
            nums = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
            lines.append(f"  seed {seed} [{'pass' if self.passed.get(seed) else 'fail'}]: {nums}")
        if self.figure_path:
            lines.append(f"  figure: {self.figure_path}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"claim_id": self.claim_id, "verdict": self.verdict, "margin": self.margin,
                "explanation": self.explanation, "fast": self.fast, "seeds": self.seeds,
                "measurements": {str(k): v for k, v in self.measurements.items()},
                "passed": {str(k): v for k, v in self.passed.items()}, "figure_path": self.figure_path,
                "missing": self.missing, "seconds": self.seconds}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


Experiment = Callable[[bool, Sequence[int]], Outcome]


@dataclass(frozen=True)
class Claim:
    """A seed paper's quantitative statement and the experiment that tests it.

    id: registry key (kebab-case). paper: title; arxiv: its arXiv id ("" if none).
    statement: the claim as a fact with its number. optimizers: optimlab names the experiment uses.
    protocol: how the experiment tests it (task, model, steps, what is measured).
    rule: the verdict rule per seed; margin: its tolerance. experiment: ``(fast, seeds) -> Outcome``,
    or None when the protocol is not implemented (``needs`` says what it would take).
    fast_seeds / full_seeds: default seeds (at least 2 / 3).
    """

    id: str
    paper: str
    arxiv: str
    statement: str
    optimizers: tuple[str, ...]
    protocol: str
    rule: str
    margin: str
    experiment: Experiment | None = None
    needs: str = ""
    fast_seeds: tuple[int, ...] = (0, 1)
    full_seeds: tuple[int, ...] = (0, 1, 2)

    def missing(self) -> list[str]:
        """What keeps the claim from running: unregistered optimizers, an unimplemented protocol."""
        from ... import available

        have = set(available())
        out = [f"optimizer {name!r} (not in optimlab.available())" for name in self.optimizers if name not in have]
        if self.experiment is None:
            out.append(self.needs or "an experiment protocol")
        return out

    def run(self, fast: bool = False, seeds: Sequence[int] | None = None,
            out_dir: str | pathlib.Path | None = None) -> Evidence:
        """Run the experiment on ``seeds`` (default: fast_seeds or full_seeds) and judge it.

        The figure is saved as ``out_dir/<id>[-fast].png`` (out_dir default: ./claims-out).
        """
        seeds = list(seeds if seeds is not None else (self.fast_seeds if fast else self.full_seeds))
        if len(seeds) < 2:
            raise ValueError(f"{self.id}: a verdict needs at least 2 seeds, got {seeds}")
        missing = self.missing()
        if missing:
            return Evidence(self.id, "pending", self.margin, f"cannot run yet: needs {'; '.join(missing)}",
                            fast, seeds, missing=missing)
        start = time.perf_counter()
        with _one_thread():
            outcome = self.experiment(fast, seeds)  # type: ignore[misc]
        seconds = time.perf_counter() - start
        verdict = outcome.verdict or verdict_from(list(outcome.passed.values()))
        if verdict not in VERDICTS:
            raise RuntimeError(f"{self.id}: experiment returned unknown verdict {verdict!r}")
        explanation = outcome.explanation
        if outcome.grid_edges and verdict in ("holds", "does not hold"):
            explanation += (f" Inconclusive rather than '{verdict}': best value at the edge of its grid "
                            f"({'; '.join(outcome.grid_edges)}), so the optimum may lie outside the grid.")
            verdict = "inconclusive"
        figure_path = None
        if outcome.figure is not None:
            out = pathlib.Path(out_dir if out_dir is not None else "claims-out")
            out.mkdir(parents=True, exist_ok=True)
            figure_path = out / f"{self.id}{'-fast' if fast else ''}.png"
            outcome.figure.savefig(figure_path, dpi=110)
            import matplotlib.pyplot as plt

            plt.close(outcome.figure)
        return Evidence(self.id, verdict, self.margin, explanation, fast, seeds,
                        measurements=outcome.per_seed, passed=outcome.passed,
                        figure_path=str(figure_path) if figure_path else None,
                        details=outcome.details, seconds=seconds)


def verdict_from(passed: Sequence[bool]) -> str:
    """All seeds pass: holds; none: does not hold; mixed: inconclusive."""
    if not passed:
        return "inconclusive"
    if all(passed):
        return "holds"
    if not any(passed):
        return "does not hold"
    return "inconclusive"


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # tiny models: a second OpenMP thread only adds synchronisation
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def new_figure(ncols: int = 1, width: float = 5.5, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib Figure (Agg backend) with ``ncols`` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# ---------------------------------------------------------------- registry

CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} is already registered")
    if len(claim.fast_seeds) < 2 or len(claim.full_seeds) < 3:
        raise ValueError(f"claim {claim.id!r}: needs >= 2 fast seeds and >= 3 full seeds")
    CLAIMS[claim.id] = claim
    return claim


def get_claim(claim_id: str) -> Claim:
    """The registered claim ``claim_id``; ValueError naming it and close ids otherwise."""
    if claim_id not in CLAIMS:
        close = difflib.get_close_matches(str(claim_id), list(CLAIMS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown claim {claim_id!r}{hint} (known: {', '.join(sorted(CLAIMS))})")
    return CLAIMS[claim_id]


def list_claims() -> list[Claim]:
    """Every registered claim, in registration order (implemented families first)."""
    return list(CLAIMS.values())


def run_claim(claim_id: str, fast: bool = False, out_dir: str | pathlib.Path | None = None,
              seeds: Sequence[int] | None = None) -> Evidence:
    """Run claim ``claim_id`` (fast or full protocol) and return its :class:`Evidence`."""
    return get_claim(claim_id).run(fast=fast, seeds=seeds, out_dir=out_dir)
