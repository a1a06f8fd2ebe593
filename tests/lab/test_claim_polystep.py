"""polystep-nondiff plumbing: every method stays within the same evaluation budget, and the staircase net's
backprop gradient is zero (so only function values can train it)."""

from __future__ import annotations

import torch
from torch import nn

from optimlab.lab.claims import polystep as claim


def test_every_method_spends_at_most_the_budget_and_nearly_all_of_it():
    data = claim._split(0)
    budget = 1_200
    per_step = {"polystep": 1_000, "es": 2 * claim.ES_Q, "random_search": 2}
    for method, value in (("polystep", 0.1), ("es", 0.01), ("random_search", 0.01)):
        out = claim._train(method, value, 0, budget, data)
        assert budget - per_step[method] < out["evals"] <= budget, (method, out["evals"])
        assert 0.0 <= out["val"] <= 1.0 and 0.0 <= out["test"] <= 1.0


def test_staircase_model_has_zero_gradient_in_its_hidden_layers():
    data = claim._split(1)
    model = claim._model(1)
    nn.functional.cross_entropy(model(data["train"][0]), data["train"][1]).backward()
    assert torch.count_nonzero(model[0].weight.grad) == 0 and torch.count_nonzero(model[2].weight.grad) == 0
