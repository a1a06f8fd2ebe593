"""Every torch LR scheduler drives every registered optimizer (item 7: OneCycleLR/CyclicLR need defaults)."""

import pytest
import torch
from torch.optim import lr_scheduler as L

import optimlab
from optimlab.core import ModelBatch


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


SCHEDULERS = {
    "LambdaLR": lambda o: L.LambdaLR(o, lambda e: 0.9**e),
    "MultiplicativeLR": lambda o: L.MultiplicativeLR(o, lambda e: 0.9),
    "StepLR": lambda o: L.StepLR(o, 2),
    "MultiStepLR": lambda o: L.MultiStepLR(o, [1, 2]),
    "ConstantLR": lambda o: L.ConstantLR(o, 0.5, total_iters=2),
    "LinearLR": lambda o: L.LinearLR(o, 0.5, total_iters=2),
    "ExponentialLR": lambda o: L.ExponentialLR(o, 0.9),
    "PolynomialLR": lambda o: L.PolynomialLR(o, total_iters=4),
    "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, 4),
    "CosineAnnealingWarmRestarts": lambda o: L.CosineAnnealingWarmRestarts(o, 2),
    # like torch.optim.Adagrad, a recipe with neither momentum nor betas cycles the lr only
    "CyclicLR": lambda o: L.CyclicLR(o, 1e-4, 1e-3, step_size_up=2, cycle_momentum=_has_momentum(o)),
    "OneCycleLR": lambda o: L.OneCycleLR(o, 1e-3, total_steps=10, cycle_momentum=_has_momentum(o)),
    "ReduceLROnPlateau": lambda o: L.ReduceLROnPlateau(o, patience=0),
    "SequentialLR": lambda o: L.SequentialLR(o, [L.ConstantLR(o, 0.5, total_iters=1), L.ExponentialLR(o, 0.9)],
                                             milestones=[1]),
    "ChainedScheduler": lambda o: L.ChainedScheduler([L.ConstantLR(o, 0.5, total_iters=1),
                                                       L.ExponentialLR(o, 0.9)]),
}


def _has_momentum(opt):
    return "momentum" in opt.defaults or "betas" in opt.defaults


def test_momentum_cycling_is_refused_like_torch_for_momentum_free_recipes():
    opt = optimlab.create(_model(), "sps")
    assert not _has_momentum(opt)
    with pytest.raises(ValueError, match="momentum or beta1"):
        L.CyclicLR(opt, 1e-4, 1e-3)
    with pytest.raises(ValueError, match="momentum or beta1"):
        L.CyclicLR(torch.optim.Adagrad(_model().parameters()), 1e-4, 1e-3)


@pytest.mark.parametrize("sched", sorted(SCHEDULERS))
def test_every_scheduler_drives_every_optimizer(sched):
    failures = []
    for name in optimlab.available():
        model = _model()
        x = torch.randn(8, 4)
        try:
            opt = optimlab.create(model, name)
            s = SCHEDULERS[sched](opt)
            lrs = []
            for _ in range(3):
                opt.zero_grad()
                loss = model(x).pow(2).mean()
                loss.backward(create_graph="hvp" in opt.recipe.needs)  # HVP-taking recipes (sophia_h...)
                closure = lambda loss=loss: loss  # noqa: E731  closure-needing recipes (sps, aegd...) read the loss
                # Gauss–Newton recipes read the outputs: the loss is F.mse_loss against zeros
                closure.batch = ModelBatch(lambda: model(x), torch.zeros(8, 2), "mse")
                opt.step(closure)
                s.step(loss.item()) if sched == "ReduceLROnPlateau" else s.step()
                lrs.append(opt.param_groups[0]["lr"])
            assert all(isinstance(v, float) and v >= 0 for v in lrs), lrs
            # the scheduler's edits survive a checkpoint round trip (its keys are accepted)
            opt2 = optimlab.create(_model(), name)
            opt2.load_state_dict(opt.state_dict())
        except Exception as e:  # collect, so that one run names every optimizer that fails
            failures.append(f"{name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_defaults_carry_betas_or_momentum_for_cycling_schedulers():
    for name in ("adamw", "muon", "sgd", "lion"):
        opt = optimlab.create(_model(), name)
        assert "lr" in opt.defaults and ({"betas", "momentum"} & set(opt.defaults)), (name, opt.defaults)
        # a group keeps only what its chain reads: no momentum pushed into an Adam group by torch's defaults
        for g in opt.param_groups:
            assert set(g) - {"params", "param_names", "role"} <= set(opt.recipe.chain_for(g["role"]).hparams)
