"""Population + CBO: vmapped values equal per-particle losses, parity with the literal CBO, Rastrigin."""

import pytest
import torch
from torch import nn

from optimlab.population import CBO, Population, consensus
from optimlab.reference.population import cbo_step


def model_and_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    return model, (lambda m, batch: nn.functional.mse_loss(m(batch[0]), batch[1])), (x, y)


def test_values_match_per_particle_losses():
    model, loss, batch = model_and_loss()
    pop = Population(model, loss, 5, spread=0.5, generator=torch.Generator().manual_seed(1))
    vals = pop.values(batch)
    for i in range(5):
        pop.write(pop.x[i])
        assert torch.allclose(vals[i], loss(model, batch), rtol=1e-12)
    assert pop.evals == 5 and all(p.grad is None for p in model.parameters())


def test_cbo_matches_reference():
    model, loss, batch = model_and_loss()
    pop = Population(model, loss, 6, spread=0.5, generator=torch.Generator().manual_seed(2))
    hp = dict(alpha=50.0, lam=1.0, sigma=0.8, dt=0.05)
    cbo = CBO(pop, generator=torch.Generator().manual_seed(3), **hp)
    xs = [r.clone() for r in pop.x]
    noise = torch.Generator().manual_seed(3)

    def f(v):
        pop.write(v)
        with torch.no_grad():
            return loss(model, batch)

    for _ in range(4):
        xis = list(torch.randn(pop.x.shape, generator=noise, dtype=torch.float64))
        xs = cbo_step(f, xs, xis, **hp)
        cbo.step(batch)
    torch.testing.assert_close(pop.x, torch.stack(xs), rtol=1e-10, atol=1e-12)


def test_consensus_is_stable_for_huge_alpha():
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    v = consensus(x, torch.tensor([5.0, 1.0, 7.0], dtype=torch.float64), 1e8)
    assert torch.equal(v, torch.tensor([2.0], dtype=torch.float64))


def test_cbo_finds_rastrigin_minimum_in_5d():
    from optimlab.lab.tasks import get_task

    task = get_task("rastrigin", dim=5)
    inst = task.build(0)
    pop = Population(inst.model, inst.loss, 100, spread=5.12, generator=torch.Generator().manual_seed(0))
    pop.x = pop.x - torch.cat([p.detach().reshape(-1) for p in pop.params])  # uniform on the domain
    cbo = CBO(pop, generator=torch.Generator().manual_seed(1))
    for _ in range(1000):
        v = cbo.step(())
    assert float(v.abs().max()) < 0.25


@pytest.mark.parametrize("bad", [dict(alpha=-1.0), dict(dt=float("nan")), dict(sigma=True)])
def test_bad_hyperparameters(bad):
    model, loss, _ = model_and_loss()
    with pytest.raises(ValueError, match="CBO: "):
        CBO(Population(model, loss, 2), **bad)
