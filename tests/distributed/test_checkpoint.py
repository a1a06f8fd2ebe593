"""DCP checkpoints: save on 4 processes, load on 2 and on 1, resume to the uninterrupted trajectory."""

from __future__ import annotations

import warnings

import pytest
import torch

from optimlab.distributed import checkpoint as ockpt

from dist_workers import launch, make_opt, params_of, resume, tiny_gpt, train, w_dcp_load, w_dcp_save

NAMES = ["dion", "sf_adamw"]  # whole-matrix work with state (dion: M sharded, Q replicated); scalar state
SAVE_AT, TOTAL = 5, 10


def _same(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs by {(a[k] - b[k]).abs().max().item():.3g}"


@pytest.mark.timeout(720)
@pytest.mark.parametrize("fsdp", [pytest.param(False, marks=pytest.mark.slow), True], ids=["ddp", "fsdp2"])
def test_dcp_save_on_four_load_on_two_and_one(tmp_path, fsdp):
    # saved by 4 DDP processes (replicated state) or 4 FSDP2 processes (DTensor state, resharded by DCP);
    # loaded by 2 DDP processes and by 1 process
    saved = launch(w_dcp_save, 4, tmp_path, NAMES, SAVE_AT, fsdp)
    assert all(not r for r in saved), saved
    loaded = launch(w_dcp_load, 2, tmp_path, NAMES, SAVE_AT, TOTAL)
    for name in NAMES:
        model = tiny_gpt(0)
        train(model, make_opt(model, name), TOTAL)  # uninterrupted, one process
        want = params_of(model)
        for rank, res in enumerate(loaded):
            assert "error" not in res, res.get("tb")
            _same(res[name]["params"], want, f"{name} loaded on 2 processes, rank {rank}")
        with warnings.catch_warnings():  # DCP warns that it runs without a process group
            warnings.simplefilter("ignore")
            one = resume(name, str(tmp_path / f"ckpt_{name}"), SAVE_AT, TOTAL)
        _same(one["params"], want, f"{name} loaded on 1 process")


def test_dcp_state_dict_round_trip_and_checks_in_one_process():
    model = tiny_gpt(0)
    opt = make_opt(model, "dion")
    train(model, opt, 2)
    sd = ockpt.state_dict(opt)
    # complete and keyed by name: every parameter, fresh or not
    assert set(sd["state"]) == {n for n, _ in model.named_parameters()}
    other = make_opt(tiny_gpt(0), "dion")
    ockpt.load_state_dict(other, sd)
    sa, sb = opt.state_dict()["state"], other.state_dict()["state"]
    assert sa.keys() == sb.keys() and len(sa) == sum(1 for _ in model.parameters())
    for i, a in sa.items():
        b = sb[i]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)
    # the optimlab checks still apply: another optimizer's checkpoint, a wrong shape, a missing entry
    with pytest.raises(ValueError, match="saved by optimizer 'dion'"):
        ockpt.load_state_dict(make_opt(tiny_gpt(0), "muon"), ockpt.state_dict(opt))
    bad = ockpt.state_dict(opt)
    name = next(n for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("blocks"))
    bad["state"][name]["dion.Q"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="has shape"):
        ockpt.load_state_dict(make_opt(tiny_gpt(0), "dion"), bad)
    bad = ockpt.state_dict(opt)
    del bad["state"][name]
    with pytest.raises(ValueError, match="no state entry"):
        ockpt.load_state_dict(make_opt(tiny_gpt(0), "dion"), bad)
    with pytest.raises(ValueError, match="not an optimlab DCP"):
        ockpt.load_state_dict(opt, {"state": {}})
