"""A small GPT-style character-level language model trained on CPython's own standard library.

Corpus: the top-level ``*.py`` files of ``sysconfig.get_paths()["stdlib"]`` in sorted file-name
order, each followed by a blank line, cut at ``corpus_chars`` characters; the first
(1 - val_fraction) is the training text and the rest the validation text. The corpus is present
wherever Python is, needs no download, and is deterministic for a given Python version (it
differs between versions; ``instance.corpus_files`` records what was read).

Vocabulary: fixed, independent of the text: the 95 printable ASCII characters, newline and tab,
and one unknown-character token (98 in all), so token ids mean the same thing on every machine.
"""

from __future__ import annotations

import functools
import math
import os
import sysconfig
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Task, TaskInstance, check_bool, check_float, check_int, generator
from .blocks import Transformer

VOCAB = "\n\t" + "".join(chr(c) for c in range(32, 127))
UNK = len(VOCAB)
VOCAB_SIZE = len(VOCAB) + 1


def encode(text: str) -> np.ndarray:
    """Token ids (uint8) of ``text`` under the fixed vocabulary; other characters map to UNK."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.full(128, UNK, dtype=np.uint8)
    for i, ch in enumerate(VOCAB):
        table[ord(ch)] = i
    return np.where(codes < 128, table[np.minimum(codes, 127)], UNK).astype(np.uint8)


def decode(ids) -> str:
    return "".join(VOCAB[i] if i < UNK else "\ufffd" for i in np.asarray(ids).tolist())


@functools.lru_cache(maxsize=4)
def stdlib_corpus(corpus_chars: int) -> tuple[str, tuple[str, ...]]:
    """The first ``corpus_chars`` characters of the sorted top-level stdlib .py files."""
    root = sysconfig.get_paths()["stdlib"]
    names = sorted(n for n in os.listdir(root) if n.endswith(".py"))
    parts, used, total = [], [], 0
    for name in names:
        try:
            with open(os.path.join(root, name), encoding="utf-8") as fh:
                text = fh.read() + "\n\n"
        except (OSError, UnicodeDecodeError):
            continue  # unreadable files are skipped; the choice stays deterministic
        parts.append(text)
        used.append(name)
        total += len(text)
        if total >= corpus_chars:
            break
    corpus = "".join(parts)[:corpus_chars]
    if len(corpus) < 10_000:
        raise RuntimeError(f"char_lm: only {len(corpus)} characters of .py source found "
                           f"under {root}")
    return corpus, tuple(used)


@dataclass(frozen=True, kw_only=True)
class CharLM(Task):
    """Options: d (model width, 128), n_layers (2), n_heads (4), context (tokens per sequence,
    64), batch_size (sequences per step, 32), tie_head (lm_head shares tok_emb's weight, False),
    corpus_chars (characters read, 1_000_000), val_fraction (0.1), eval_batches (validation
    batches of batch_size sequences at fixed, evenly spaced offsets, 8).

    Metrics: eval_loss (validation cross-entropy, nats per char), bits_per_char
    (eval_loss / ln 2), train_eval_loss (the same measurement on training text).
    Role hints: head "lm_head", embedding "tok_emb" (only the embedding when tied).
    """

    name = "char_lm"
    eval_cost = 6.0
    description = "GPT-style character LM on CPython standard-library source"
    references = ("Radford et al., 'Language Models are Unsupervised Multitask Learners' "
                  "(GPT-2), 2019",)

    d: int = 128
    n_layers: int = 2
    n_heads: int = 4
    context: int = 64
    batch_size: int = 32
    tie_head: bool = False
    corpus_chars: int = 1_000_000
    val_fraction: float = 0.1
    eval_batches: int = 8

    def _targets(self) -> dict[str, float]:
        # reached by AdamW at the task's settings within the default budget (seeds 0 and 1, measured)
        return {"eval_loss": 2.3, "bits_per_char": 3.32}

    def __post_init__(self) -> None:
        t = self.name
        check_int(t, "d", self.d, minimum=1)
        check_int(t, "n_layers", self.n_layers, minimum=1)
        check_int(t, "n_heads", self.n_heads, minimum=1)
        if self.d % self.n_heads:
            raise ValueError(f"{t}: n_heads must divide d={self.d}, got {self.n_heads!r}")
        check_int(t, "context", self.context, minimum=2)
        check_int(t, "batch_size", self.batch_size, minimum=1)
        check_bool(t, "tie_head", self.tie_head)
        check_int(t, "corpus_chars", self.corpus_chars, minimum=20_000)
        check_float(t, "val_fraction", self.val_fraction, minimum=0.01, maximum=0.5)
        check_int(t, "eval_batches", self.eval_batches, minimum=1)

    def _metrics(self):
        return ("eval_loss", "bits_per_char", "train_eval_loss")

    def _default_steps(self) -> int:
        return 500

    def _adamw(self):
        return {"lr": 3e-3, "weight_decay": 0.1, "betas": (0.9, 0.95)}

    def _build(self, seed: int) -> "CharLMInstance":
        return CharLMInstance(self, seed)


class CharLMInstance(TaskInstance):
    _tensor_attrs = ("train_tokens", "val_tokens")

    def __init__(self, task: CharLM, seed: int) -> None:
        corpus, files = stdlib_corpus(task.corpus_chars)
        self.corpus_files = files
        tokens = torch.from_numpy(encode(corpus).astype(np.int64))
        n_val = int(len(tokens) * task.val_fraction)
        self.train_tokens, self.val_tokens = tokens[:-n_val], tokens[-n_val:]
        model = Transformer(VOCAB_SIZE, task.context, task.d, task.n_layers, task.n_heads,
                            tie=task.tie_head)
        model.reset_parameters(generator(seed, "init"))
        # a tied lm_head is the embedding's own weight: name only the embedding then
        hints = {"embedding": "tok_emb"} if task.tie_head else {"head": "lm_head",
                                                                 "embedding": "tok_emb"}
        super().__init__(task, seed, model, role_hints=hints)

    @staticmethod
    def _windows(tokens: Tensor, starts: Tensor, context: int) -> tuple[Tensor, Tensor]:
        idx = starts[:, None] + torch.arange(context + 1, device=starts.device)
        seq = tokens[idx]
        return seq[:, :-1], seq[:, 1:]

    def _make_batch(self, step: int) -> tuple:
        t = self.task
        tokens = self.train_tokens.cpu()
        starts = torch.randint(len(tokens) - t.context - 1, (t.batch_size,),
                               generator=self.batch_generator(step))
        return self._windows(tokens, starts, t.context)

    def loss(self, model: nn.Module, batch: tuple) -> Tensor:
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _fixed_loss(self, model: nn.Module, tokens: Tensor) -> Tensor:
        t = self.task
        count = t.eval_batches * t.batch_size
        starts = torch.linspace(0, len(tokens) - t.context - 2, count, device=tokens.device).long()
        total = 0.0
        for chunk in starts.split(t.batch_size):
            total = total + self.loss(model, self._windows(tokens, chunk, t.context)) * len(chunk)
        return total / count

    def _evaluate(self, model: nn.Module) -> dict:
        val = self._fixed_loss(model, self.val_tokens)
        return {"eval_loss": val, "bits_per_char": val / math.log(2),
                "train_eval_loss": self._fixed_loss(model, self.train_tokens)}
