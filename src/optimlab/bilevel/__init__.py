"""Bilevel optimisation: min_x f(x, y*(x)), y*(x) = argmin_y g(x, y) — hypergradients for the outer step.

    from optimlab.bilevel import ift_hypergradient, inner_gd, write_hypergrad
    y = inner_gd(g, x, y, steps=100, lr=0.1)
    write_hypergrad(x, ift_hypergradient(g, f, x, y, terms=20, alpha=0.1))
    outer_opt.step()

Estimators: full and truncated unrolling, IFT with a Neumann series, the dense exact one, F2SA (first
order). Tasks (data hyper-cleaning, per-weight L2) live in ``optimlab.lab.bilevel_tasks``. See docs/bilevel.md.
"""
from .f2sa import F2SA
from .hypergrad import dense_hypergradient, ift_hypergradient, inner_gd, unrolled_hypergradient, write_hypergrad

__all__ = ["F2SA", "dense_hypergradient", "ift_hypergradient", "inner_gd", "unrolled_hypergradient",
           "write_hypergrad"]
