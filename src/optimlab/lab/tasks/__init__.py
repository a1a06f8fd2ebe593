"""The lab's task library: small problems that optimizers are run on.

``TASKS`` maps each name to its :class:`Task` class (the class's keyword arguments are the task's
options); ``get_task(name, **options)`` validates both and returns a configured task, whose
``build(seed)`` gives a :class:`TaskInstance` (model, ``batch(step)``, ``loss``, ``evaluate``).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from .associative_memory import AssociativeMemory
from .base import Task, TaskInstance, TaskSpec
from .char_lm import CharLM
from .classification import MNIST1D, DigitsMLP
from .continual_digits import ContinualDigits
from .deep_linear import DeepLinear
from .functions import Rastrigin, Rosenbrock
from .groups import FiniteGroupWords
from .lifted_sensing import LiftedMatrixSensing
from .matrix_sensing import MatrixSensing
from .modular import ModularArithmetic
from .phase_retrieval import PhaseRetrieval
from .pinn import PINN
from .pinn_suite import PINNSuite
from .planted import SingleIndex, TensorPCA
from .policy_mdp import PolicyMDP
from .quadratic import Quadratic
from .random_features import RandomFeatures
from .river_valley import BigramLM, RiverValley
from .robust_sensing import RobustMatrixSensing
from .student_teacher import StudentTeacher
from .tubal import TubalSensing

__all__ = ["TASKS", "Task", "TaskInstance", "TaskSpec", "get_task"]

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (Quadratic, Rosenbrock, Rastrigin, RandomFeatures, AssociativeMemory,
                ModularArithmetic, MatrixSensing, DeepLinear, DigitsMLP, MNIST1D, CharLM, PINN, ContinualDigits,
                SingleIndex, TensorPCA, PolicyMDP,
                TubalSensing, FiniteGroupWords, StudentTeacher,
                PhaseRetrieval, RobustMatrixSensing, RiverValley, BigramLM, PINNSuite, LiftedMatrixSensing)
}


def get_task(name: str, **options: Any) -> Task:
    """The task ``name`` configured with ``options``.

    Unknown name: ValueError with close matches and the full list. Unknown option: TypeError
    listing the valid ones. Bad option value: ValueError naming the option and the value.
    """
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=3) if isinstance(name, str) else []
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ValueError(f"unknown task {name!r}; {hint}available: {', '.join(sorted(TASKS))}")
    cls = TASKS[name]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {', '.join(unknown)}; "
                        f"valid options: {', '.join(valid)}")
    return cls(**options)
