"""Live heap bytes a zeroth-order step holds while the loss is evaluated, beyond the idle model (char_lm).

The resident-memory peak (``benchmarks/memory.py``) cannot see memory reused from pages already resident, so
this counts live allocations instead: glibc's ``mallinfo2()`` (in-use heap + mmapped blocks; torch's CPU
allocator calls malloc) sampled just before every loss evaluation of ``zo_sgd`` steps, minus the same figure
between steps, after three warm-up steps. What remains alive across an evaluation is the exact-restore record
of the perturbation (``_Perturbation.fixup_bytes``, printed per move) and its tensors' overhead. Linux/glibc only.

    PYTHONPATH=src MALLOC_MMAP_THRESHOLD_=65536 python benchmarks/zo_live_bytes.py [--widths 256 512]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[256, 512])
    args = ap.parse_args()

    import torch

    import optimlab
    from optimlab.core import context
    from optimlab.lab.tasks import get_task
    from optimlab.transforms import zeroth_order as zo

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2

    def live_mb() -> float:
        m = libc.mallinfo2()
        return (m.uordblks + m.hblkhd) / 2**20

    torch.set_num_threads(1)
    ctx_cls = next(c for c in vars(context).values() if isinstance(c, type) and hasattr(c, "value"))
    value, move = ctx_cls.value, zo._Perturbation.move
    samples: list[float] = []
    fixups: list[int] = []

    def sampled_value(self):
        samples.append(live_mb())
        return value(self)

    def recorded_move(self, sign):
        move(self, sign)
        fixups.append(self.fixup_bytes())

    ctx_cls.value, zo._Perturbation.move = sampled_value, recorded_move
    for width in args.widths:
        inst = get_task("char_lm", d=width, n_layers=2, n_heads=4, context=64, batch_size=4,
                        corpus_chars=20_000).build(0)
        model = inst.model
        opt = optimlab.create(model, "zo_sgd", **inst.role_hints)

        def steps(k: int) -> None:
            for s in range(k):
                b = inst.batch(s)

                def closure(b=b):
                    with torch.no_grad():
                        return inst.loss(model, b)
                opt.step(closure)

        steps(3)
        gc.collect()
        idle = live_mb()
        samples.clear()
        fixups.clear()
        steps(3)
        n = sum(p.numel() for p in model.parameters())
        extra = [x - idle for x in samples]
        print(json.dumps({"width": width, "params": n, "live_extra_mb_max": round(max(extra), 3),
                          "live_extra_b_per_param": round(max(extra) * 2**20 / n, 3),
                          "fixup_b_per_param_max": round(max(fixups) / n, 3)}))
        del opt, model, inst
        gc.collect()


if __name__ == "__main__":
    main()
