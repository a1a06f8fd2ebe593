"""The policy-gradient task: exact objective against rollouts, and the DiCE surrogate's gradient and Hessian are
unbiased estimates of the exact ones (what N-HARPG's correction relies on)."""

import pytest
import torch

from optimlab.lab.tasks import get_task


@pytest.fixture(scope="module")
def big():
    return get_task("policy_mdp", batch_size=100_000).build(0)


def _surrogate_derivatives(inst, v):
    logits = inst.model.logits
    loss = inst.loss(inst.model, inst.batch(0))
    (g,) = torch.autograd.grad(loss, logits, create_graph=True)
    (hv,) = torch.autograd.grad(g, logits, v)
    return loss.detach(), g.detach(), hv


def _exact_derivatives(inst, v):
    logits = inst.model.logits.detach().clone().requires_grad_(True)
    loss = inst.optimal_value - inst.objective(logits)
    (g,) = torch.autograd.grad(loss, logits, create_graph=True)
    (hv,) = torch.autograd.grad(g, logits, v)
    return loss.detach(), g.detach(), hv


def test_rollout_estimates_match_the_exact_value_gradient_and_hessian(big):
    v = torch.randn(big.model.logits.shape, generator=torch.Generator().manual_seed(1))
    loss, g, hv = _surrogate_derivatives(big, v)
    loss_x, g_x, hv_x = _exact_derivatives(big, v)
    assert abs(float(loss - loss_x)) < 0.02 * float(big.optimal_value)
    assert float((g - g_x).norm() / g_x.norm()) < 0.1  # Monte-Carlo error ~0.04 at 1e5 trajectories
    assert float((hv - hv_x).norm() / hv_x.norm()) < 0.3  # ~0.13: the Hessian estimate is noisier


def test_regret_is_nonnegative_and_shrinks_under_exact_gradient_ascent():
    inst = get_task("policy_mdp").build(1)
    before = inst.evaluate()
    assert before["eval_loss"] >= 0 and before["return"] > 0
    with torch.no_grad():
        for _ in range(60):
            inst.model.logits -= 3.0 * inst.exact_gradient()
    after = inst.evaluate()
    assert 0 <= after["eval_loss"] < 0.3 * before["eval_loss"]
    assert after["grad_norm"] < before["grad_norm"]
