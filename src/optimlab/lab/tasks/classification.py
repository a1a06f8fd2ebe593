"""Small classification tasks on data shipped with installed packages (nothing is downloaded):

* ``digits_mlp``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), an MLP.
* ``mnist1d``: MNIST-1D (Greydanus, "Scaling down Deep Learning", arXiv:2011.14439) made by the
  mnist1d package's offline generator ``mnist1d.data.make_dataset`` with its default arguments
  (4,000 train / 1,000 test sequences of length 40); never its download path. An MLP or a small
  1-D CNN. Greydanus reports about 68% test accuracy for an MLP and 94% for a CNN.

Both report train_loss, train_accuracy, eval_loss (test loss) and test_accuracy (primary).
``loss="mse"`` trains on 1/2 ||f(x) - onehot(y)||^2, the loss of the edge-of-stability
experiments (Cohen et al., arXiv:2103.00065).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import (AccuracyTask, TaskInstance, check_choice, check_float, check_int, generator,
                   init_module_, preserve_global_rng)
from .blocks import ACTIVATIONS, MLP, EpochSampler, sampled_batch

LOSSES = ("ce", "mse")


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, read from disk

    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mnist1d() -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    with preserve_global_rng():  # make_dataset reseeds numpy's and random's global state
        data = make_dataset(get_dataset_args())
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


@dataclass(frozen=True, kw_only=True)
class _Classification(AccuracyTask):
    width: int = 128
    depth: int = 2
    activation: str = "relu"
    loss: str = "ce"
    batch_size: int | None = 64

    def _check_common(self) -> None:
        t = self.name
        check_int(t, "width", self.width, minimum=1)
        check_int(t, "depth", self.depth, minimum=0)
        check_choice(t, "activation", self.activation, tuple(ACTIVATIONS))
        check_choice(t, "loss", self.loss, LOSSES)
        if self.batch_size is not None:
            check_int(t, "batch_size", self.batch_size, minimum=1)

    def _adamw(self):
        return {"lr": 1e-3, "weight_decay": 0.01}


@dataclass(frozen=True, kw_only=True)
class DigitsMLP(_Classification):
    """Options: width (128), depth (hidden layers, 2), activation ("relu" | "tanh" | "gelu"),
    loss ("ce" | "mse"), batch_size (64; None: full batch), test_fraction (0.2). The split is a
    random permutation from the seed; pixels are standardised with training-set statistics."""

    name = "digits_mlp"
    eval_cost = 4.0
    description = "MLP on scikit-learn's bundled 8x8 digits"
    references = ("Alpaydin, Kaynak, 'Optical Recognition of Handwritten Digits', UCI 1998 "
                  "(the data behind sklearn.datasets.load_digits)",)

    test_fraction: float = 0.2

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1, measured)
        return {"test_accuracy": 0.97, "eval_loss": 0.15}

    def __post_init__(self) -> None:
        self._check_common()
        check_float(self.name, "test_fraction", self.test_fraction, minimum=0.0, maximum=0.9,
                    strict_min=True)

    def _default_steps(self) -> int:
        return 2000

    def _build(self, seed: int) -> "ClassificationInstance":
        x, y = _digits()
        perm = torch.randperm(len(y), generator=generator(seed, "split"))
        n_test = max(1, int(round(self.test_fraction * len(y))))
        x, y = torch.from_numpy(x)[perm], torch.from_numpy(y)[perm]
        x_tr, y_tr, x_te, y_te = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
        mean, std = x_tr.mean(0), x_tr.std(0)
        std = torch.where(std > 1e-3, std, torch.ones_like(std))  # constant border pixels
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
        model = MLP(64, [self.width] * self.depth, 10, self.activation)
        init_module_(model, generator(seed, "init"))
        return ClassificationInstance(self, seed, model, x_tr, y_tr, x_te, y_te)


@dataclass(frozen=True, kw_only=True)
class MNIST1D(_Classification):
    """Options: arch ("mlp" | "cnn"), width (MLP hidden width, 128), depth (MLP hidden layers,
    2), channels (CNN channels, 32), activation, loss ("ce" | "mse"), batch_size (100; None:
    full batch). The CNN is three Conv1d(k=5, stride 2) layers (40 -> 20 -> 10 -> 5) and a
    linear head. The dataset is the package's canonical one (its seed 42); the task seed sets
    the initialisation and batch order."""

    name = "mnist1d"
    eval_cost = 7.0
    description = "MNIST-1D from the mnist1d offline generator, MLP or 1-D CNN"
    references = ("Greydanus, Kobak, 'Scaling down Deep Learning with MNIST-1D', "
                  "arXiv:2011.14439",)

    arch: str = "mlp"
    channels: int = 32
    batch_size: int | None = 100

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1, measured)
        return {"test_accuracy": 0.58, "eval_loss": 1.15}

    def __post_init__(self) -> None:
        self._check_common()
        check_choice(self.name, "arch", self.arch, ("mlp", "cnn"))
        check_int(self.name, "channels", self.channels, minimum=1)

    def _default_steps(self) -> int:
        return 3000 if self.arch == "mlp" else 2000

    def _build(self, seed: int) -> "ClassificationInstance":
        data = _mnist1d()
        x_tr = torch.tensor(data["x"], dtype=torch.float32)
        x_te = torch.tensor(data["x_test"], dtype=torch.float32)
        y_tr = torch.tensor(data["y"], dtype=torch.int64)
        y_te = torch.tensor(data["y_test"], dtype=torch.int64)
        if self.arch == "mlp":
            model: nn.Module = MLP(x_tr.shape[1], [self.width] * self.depth, 10, self.activation)
        else:
            model = ConvNet1d(x_tr.shape[1], self.channels, 10, self.activation)
        init_module_(model, generator(seed, "init"))
        return ClassificationInstance(self, seed, model, x_tr, y_tr, x_te, y_te)


class ConvNet1d(nn.Module):
    def __init__(self, length: int, channels: int, classes: int, activation: str) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(
            nn.Conv1d(1, channels, 5, stride=2, padding=2), act(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2), act(),
            nn.Conv1d(channels, channels, 5, stride=2, padding=2), act(),
        )
        for _ in range(3):
            length = (length + 2 * 2 - 5) // 2 + 1
        self.head = nn.Linear(channels * length, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x[:, None, :]).flatten(1))


class ClassificationInstance(TaskInstance):
    _tensor_attrs = ("x_train", "y_train", "x_test", "y_test")

    def __init__(self, task: _Classification, seed: int, model: nn.Module, x_train: Tensor,
                 y_train: Tensor, x_test: Tensor, y_test: Tensor) -> None:
        self.x_train, self.y_train, self.x_test, self.y_test = x_train, y_train, x_test, y_test
        self.full_batch = task.batch_size is None
        self._sampler = EpochSampler(seed, len(y_train), task.batch_size or len(y_train))
        super().__init__(task, seed, model, role_hints={"head": "head"})

    def _make_batch(self, step: int) -> tuple:
        return sampled_batch(self._sampler, self.full_batch, step, self.x_train, self.y_train)

    def _criterion(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.task.loss == "ce":
            return F.cross_entropy(logits, y)
        onehot = F.one_hot(y, logits.shape[1]).to(logits.dtype)
        return 0.5 * (logits - onehot).pow(2).sum(dim=1).mean()

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        return self._criterion(model(x), y)

    def model_batch(self, model: nn.Module, batch: tuple) -> Any:
        from ...core.model_batch import ModelBatch

        x, y = batch
        if self.task.loss == "ce":
            return ModelBatch(lambda: model(x), y, "cross_entropy")
        classes = int(max(self.y_train.max(), self.y_test.max())) + 1  # the criterion's one-hot width
        return ModelBatch(lambda: model(x), F.one_hot(y, classes).float(), "half_sse")

    def _evaluate(self, model: nn.Module) -> dict:
        out = {}
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            logits = model(x)
            out[f"{split}_loss" if split == "train" else "eval_loss"] = self._criterion(logits, y)
            out[f"{split}_accuracy"] = (logits.argmax(1) == y).float().mean()
        return out
