"""Float64 reference solutions for the ``pinn_pde`` equations without a closed form, computed at build time.

Each solver returns ``(x, t, fields)``: the spatial grid (``points`` values on the periodic interval), the ``saves``
save times from 0 to the horizon, and one array (saves × points) per field.

gray_scott: u_t = D_u u_xx − u v² + F (1 − u),  v_t = D_v v_xx + u v² − (F + κ) v on [0, 1) periodic
    (Pearson, Science 261, 1993), D_u = 2e-3, D_v = 1e-3, F = 0.04, κ = 0.06; u(x, 0) = 1 − ½ g, v(x, 0) = ¼ g,
    g = exp(−((x − ½)/0.1)²). Second-order central differences in space, explicit Euler in time.
bz: the two-variable Oregonator of the Belousov–Zhabotinsky reaction in the scaling of Tyson and Fife
    (J. Chem. Phys. 73, 2224, 1980; the reaction–diffusion form of Keener and Tyson, Physica D 21, 307, 1986):
        u_t = D_u u_xx + (u (1 − u) − f v (u − q)/(u + q)) / ε,   v_t = D_v v_xx + u − v
    on [0, 1) periodic; u is the scaled HBrO2 (activator), v the scaled oxidised catalyst (inhibitor). Coefficients
    in BZ below: ε = 0.1, q = 0.01, f = 1, D_u = D_v = 4e-3 (the homogeneous steady state is then unstable, its
    Jacobian's eigenvalues 4.40 and 0.60: an oscillatory medium). The
    chemistry's ε is 0.01–0.05 and q ≈ 0.002 (Tyson–Fife, Keener–Tyson); this benchmark takes a milder ε and q
    so that the fronts stay resolvable by a width-32 network and by 256 grid points. Initial state: the
    homogeneous steady state u* = v* with an excited spot u = u* + (1 − u*) g (:func:`bz_initial`); the spot
    fires, spreads, and the medium relaxes to u ≈ q by t ≈ 2.5. The rectangle [q, 1] × [0, 1] is invariant (the
    reaction points inward on its edges, and the explicit scheme keeps it for dt ≤ dx²/(2D) and dt small
    against ε), which the tests check. Central differences in space (256 points), explicit Euler, dt = 2e-4.
ks: the Kuramoto–Sivashinsky equation u_t + u u_X + u_XX + u_XXXX = 0 on X ∈ [0, 32π) periodic,
    u(X, 0) = cos(X/16)(1 + sin(X/16)) (the problem of Kassam and Trefethen, "Fourth-order time-stepping for stiff
    PDEs", SIAM J. Sci. Comput. 26, 2005); Fourier pseudo-spectral in space (128 modes, the Nyquist mode zeroed),
    ETDRK4 in time (Cox and Matthews, J. Comput. Phys. 176, 2002) with the contour-integral coefficients of
    Kassam and Trefethen (16 points), dt = 1/8. The flow stays laminar until about X-time 30-40; the default
    horizon is well before that.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["GS", "BZ", "KS_LENGTH", "gray_scott_reference", "bz_initial", "bz_reaction", "bz_reference", "bz_rest", "ks_initial",
           "ks_reference", "ks2d_initial", "ks2d_reference", "KS2D_LENGTH", "bump"]

GS = {"du": 2e-3, "dv": 1e-3, "feed": 0.04, "kill": 0.06}
BZ = {"eps": 0.1, "q": 0.01, "f": 1.0, "du": 4e-3, "dv": 4e-3}
KS_LENGTH = 32 * math.pi
KS2D_LENGTH = 8 * math.pi


def bump(x):
    """exp(−((x − ½)/0.1)²) (numpy arrays or torch tensors)."""
    return (-((x - 0.5) / 0.1) ** 2).exp() if hasattr(x, "exp") else np.exp(-((x - 0.5) / 0.1) ** 2)


def _save_plan(horizon: float, dt: float, saves: int) -> tuple[int, dict[int, int]]:
    steps = int(round(horizon / dt))
    return steps, {int(round(i * steps / (saves - 1))): i for i in range(saves)}


def _lap(a: np.ndarray, dx2: float) -> np.ndarray:
    return (np.roll(a, 1) - 2 * a + np.roll(a, -1)) / dx2


def _euler(rhs, state: tuple, horizon: float, dt: float, saves: int) -> list[np.ndarray]:
    """Explicit Euler for ``state' = rhs(state)`` with the states at ``saves`` equally spaced times."""
    steps, save_at = _save_plan(horizon, dt, saves)
    out = [np.zeros((saves, s.shape[0])) for s in state]
    for n in range(steps + 1):
        if n in save_at:
            for o, s in zip(out, state):
                o[save_at[n]] = s
        if n == steps:
            break
        state = tuple(s + dt * r for s, r in zip(state, rhs(*state)))
    return out


def gray_scott_reference(horizon: float, points: int = 128, dt: float = 1e-3, saves: int = 26) -> tuple:
    """(x grid, save times, u, v) of the finite-difference Gray–Scott solution (arrays saves × points)."""
    x = np.arange(points) / points
    g = bump(x)
    dx2 = (1.0 / points) ** 2

    def rhs(u, v):
        lap_u, lap_v = _lap(u, dx2), _lap(v, dx2)
        uvv = u * v * v
        return (GS["du"] * lap_u - uvv + GS["feed"] * (1 - u),
                GS["dv"] * lap_v + uvv - (GS["feed"] + GS["kill"]) * v)

    us, vs = _euler(rhs, (1.0 - 0.5 * g, 0.25 * g), horizon, dt, saves)
    return x, np.linspace(0.0, horizon, saves), us, vs


def bz_reaction(u, v):
    """The Oregonator's reaction terms (R_u without the 1/ε, R_v) for numpy arrays or torch tensors."""
    c = BZ
    return u * (1 - u) - c["f"] * v * (u - c["q"]) / (u + c["q"]), u - v


def bz_rest() -> float:
    """The homogeneous steady state u* = v*: the positive root of u² + (q + f − 1) u − q (1 + f) = 0."""
    b = BZ["q"] + BZ["f"] - 1
    return (-b + math.sqrt(b * b + 4 * BZ["q"] * (1 + BZ["f"]))) / 2


def bz_initial(x):
    """The steady state with an excited spot: u = u* + (1 − u*) g(x), v = u*."""
    rest = bz_rest()
    g = bump(x)
    return rest + (1 - rest) * g, rest + 0 * g


def bz_reference(horizon: float, points: int = 256, dt: float = 2e-4, saves: int = 26) -> tuple:
    """(x grid, save times, u, v) of the finite-difference Oregonator solution (arrays saves × points)."""
    x = np.arange(points) / points
    dx2 = (1.0 / points) ** 2

    def rhs(u, v):
        ru, rv = bz_reaction(u, v)
        return BZ["du"] * _lap(u, dx2) + ru / BZ["eps"], BZ["dv"] * _lap(v, dx2) + rv

    us, vs = _euler(rhs, bz_initial(x), horizon, dt, saves)
    return x, np.linspace(0.0, horizon, saves), us, vs


def ks_initial(x):
    """cos(X/16)(1 + sin(X/16)) at X = 32π x, x ∈ [0, 1) (numpy or torch)."""
    two_pi_x = 2 * math.pi * x
    if hasattr(x, "cos"):
        return two_pi_x.cos() * (1 + two_pi_x.sin())
    return np.cos(two_pi_x) * (1 + np.sin(two_pi_x))


def _etdrk4(lin: np.ndarray, n_of, vh: np.ndarray, horizon: float, dt: float, saves: int, to_real) -> list:
    """ETDRK4 (Cox–Matthews) for v' = lin·v + N(v) in Fourier space, the φ-function coefficients by Kassam and
    Trefethen's contour mean (16 points); the step is the largest ≤ ``dt`` dividing the interval between saves.
    Returns ``to_real(v)`` at the ``saves`` times."""
    per_save = max(1, math.ceil(horizon / (saves - 1) / dt - 1e-9))
    dt = horizon / (saves - 1) / per_save
    e, e2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    m = 16
    r = np.exp(1j * math.pi * (np.arange(1, m + 1) - 0.5) / m)
    lr = dt * lin[..., None] + r
    ex = np.exp(lr)
    q = dt * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=-1))
    f1 = dt * np.real(np.mean((-4 - lr + ex * (4 - 3 * lr + lr ** 2)) / lr ** 3, axis=-1))
    f2 = dt * np.real(np.mean((2 + lr + ex * (lr - 2)) / lr ** 3, axis=-1))
    f3 = dt * np.real(np.mean((-4 - 3 * lr - lr ** 2 + ex * (4 - lr)) / lr ** 3, axis=-1))
    out = [to_real(vh)]
    for n in range(1, (saves - 1) * per_save + 1):
        nv = n_of(vh)
        a = e2 * vh + q * nv
        na = n_of(a)
        b = e2 * vh + q * na
        nb = n_of(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = n_of(c)
        vh = e * vh + nv * f1 + 2 * (na + nb) * f2 + nc * f3
        if n % per_save == 0:
            out.append(to_real(vh))
    return out


def ks_reference(horizon: float, points: int = 128, dt: float = 0.125, saves: int = 26) -> tuple:
    """(x ∈ [0, 1) grid, save times, u) of the ETDRK4 pseudo-spectral KS solution on X = 32π x (saves × points).
    The step is the largest ≤ ``dt`` that divides the interval between saves."""
    x = np.arange(points) / points
    k = 2 * math.pi / KS_LENGTH * np.arange(points // 2 + 1)
    lin = k ** 2 - k ** 4  # the linear operator −∂² − ∂⁴ in Fourier space
    nonlin = -0.5j * k  # N(u) = −½ (u²)_X
    nonlin[-1] = 0.0  # no Nyquist mode

    def n_of(vh):
        return nonlin * np.fft.rfft(np.fft.irfft(vh, n=points) ** 2)

    vh = np.fft.rfft(ks_initial(x))
    vh[-1] = 0.0
    us = _etdrk4(lin, n_of, vh, horizon, dt, saves, lambda v: np.fft.irfft(v, n=points))
    return x, np.linspace(0.0, horizon, saves), np.stack(us)


def ks2d_initial(x, y):
    """cos(2πx)(1 + sin(2πy)) on the unit square (numpy or torch)."""
    if hasattr(x, "cos"):
        return (2 * math.pi * x).cos() * (1 + (2 * math.pi * y).sin())
    return np.cos(2 * math.pi * x) * (1 + np.sin(2 * math.pi * y))


def ks2d_reference(horizon: float, points: int = 32, dt: float = 0.125, saves: int = 11) -> tuple:
    """(x ∈ [0, 1) grid, save times, u) of the 2-D KS equation u_t + ½|∇u|² + Δu + Δ²u = 0 on [0, L)², L = 8π,
    pseudo-spectral (points² modes, Nyquist modes zeroed) with ETDRK4; u has shape saves × points × points
    (indexed [t, x, y])."""
    x = np.arange(points) / points
    kx = 2 * math.pi / KS2D_LENGTH * np.fft.fftfreq(points, 1.0 / points)
    ky = 2 * math.pi / KS2D_LENGTH * np.arange(points // 2 + 1)
    kx[points // 2] = 0.0
    ky[-1] = 0.0
    kk = kx[:, None] ** 2 + ky[None, :] ** 2
    lin = kk - kk ** 2
    shape = (points, points)

    def n_of(vh):
        ux = np.fft.irfft2(1j * kx[:, None] * vh, s=shape)
        uy = np.fft.irfft2(1j * ky[None, :] * vh, s=shape)
        nh = -0.5 * np.fft.rfft2(ux ** 2 + uy ** 2)
        nh[points // 2, :] = 0.0
        nh[:, -1] = 0.0
        return nh

    gx, gy = np.meshgrid(x, x, indexing="ij")
    vh = np.fft.rfft2(ks2d_initial(gx, gy))
    vh[points // 2, :] = 0.0
    vh[:, -1] = 0.0
    us = _etdrk4(lin, n_of, vh, horizon, dt, saves, lambda v: np.fft.irfft2(v, s=shape))
    return x, np.linspace(0.0, horizon, saves), np.stack(us)
