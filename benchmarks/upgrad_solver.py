"""UPGrad's aggregation: optimlab's dual NNLS (scipy) vs TorchJD's quadprog projector, interleaved.

For m objectives and n = 1000 parameters (random Gaussian J, fp64, one thread), times one aggregation
(Gramian, m projections, direction) for each implementation, alternating them over repeats, and reports
the median times, their ratio, the relative difference of the directions, and each one's worst
min_i ⟨d, g_i⟩. Run: PYTHONPATH=src python benchmarks/upgrad_solver.py
"""
from __future__ import annotations

import statistics
import time

import torch


def main() -> None:
    from torchjd._linalg._dual_cone import QuadprogProjector
    from torchjd.aggregation import UPGrad as TorchJD

    from optimlab.combine import UPGrad

    torch.set_num_threads(1)
    ours, exact, default = UPGrad(), TorchJD(projector=QuadprogProjector(norm_eps=0.0, reg_eps=0.0)), TorchJD()
    print(f"{'m':>4} {'ours ms':>9} {'torchjd ms':>11} {'ratio':>6} {'rel diff (exact)':>17} "
          f"{'rel diff (default)':>19} {'min <d,g> ours':>15} {'torchjd':>10}")
    for m in (4, 16, 64, 128):
        gen = torch.Generator().manual_seed(m)
        t_ours, t_jd, diff_e, diff_d, worst_o, worst_j = [], [], 0.0, 0.0, float("inf"), float("inf")
        for _ in range(7 if m <= 64 else 3):
            J = torch.randn(m, 1000, generator=gen, dtype=torch.float64)
            t0 = time.perf_counter()
            d = ours.combine(J)
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            dj = default(J)
            t_jd.append(time.perf_counter() - t0)
            try:
                de = exact(J)
                diff_e = max(diff_e, float((d - de).norm() / d.norm()))
            except ValueError:  # quadprog refuses a singular Gramian without regularisation
                diff_e = float("nan")
            diff_d = max(diff_d, float((d - dj).norm() / d.norm()))
            worst_o, worst_j = min(worst_o, float((J @ d).min())), min(worst_j, float((J @ dj).min()))
        a, b = statistics.median(t_ours) * 1e3, statistics.median(t_jd) * 1e3
        print(f"{m:>4} {a:>9.2f} {b:>11.2f} {a / b:>6.2f} {diff_e:>17.2e} {diff_d:>19.2e} {worst_o:>15.3g} {worst_j:>10.3g}")


if __name__ == "__main__":
    main()
