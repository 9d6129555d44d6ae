"""Exact, vectorised REML for the mixed models of change.

:func:`fit_reml_person` fits ``y ~ 0 + X + (1 | person)`` for any fixed design
``X`` (the cohort fixed-effects model: a section at the end). The rest of this
module is the random-cohort model, :func:`fit_reml`:
``score ~ x + (1 + x | cohort) + (1 | participant in cohort)`` (``x`` is ``post``: 0
at the from-wave, 1 at the to-wave), or its random-intercept form
``score ~ x + (1 | cohort) + (1 | participant in cohort)``.
statsmodels' ``MixedLM`` fits it exactly but loops over cohorts in Python
(about a second for 20 cohorts of 30 people); this module fits the same
restricted likelihood with no loop over cohorts or people, so a national
program (1,000 cohorts, ~55,000 rows) takes a fraction of a second.

Method
------
All variances are expressed relative to the residual variance ``sigma^2``
(which is profiled out, as statsmodels does): ``G`` is the cohort covariance
(q x q, q = 2 with the random slope, 1 without) and ``lam`` the participant
variance, both divided by ``sigma^2``. For cohort ``c`` with fixed-effect design
``X = [1, x]`` and random design ``Z`` = the first q columns of ``X``, the
marginal covariance is ``sigma^2 (D + Z G Z')`` where ``D`` is block-diagonal
per person: ``I + lam J`` over that person's m rows, whose inverse is
``I - lam / (1 + m lam) J``. Hence, for any ``lam``, ``X' D^-1 X``,
``X' D^-1 y`` and ``y' D^-1 y`` of a cohort are fixed linear combinations of
sums precomputed once per cohort and person size m (counts, sums of x, x^2,
y, xy, y^2 and of the per-person totals' squares and cross-products). With
``M = Z' D^-1 Z`` and Woodbury, ``W = G (I + M G)^-1`` (valid for singular
``G``) and

- ``X' V^-1 X = X'D^-1 X - X'D^-1 Z W Z'D^-1 X`` (and likewise for ``y``),
- ``log det V = sum over people of log(1 + m lam) + log det(I + G M)``,

all as batched 2 x 2 algebra over cohorts. The REML log-likelihood with the
fixed effects and ``sigma^2`` profiled out is then (statsmodels' form)

    -1/2 [log det V + log det X'V^-1 X + (n - p) log r'V^-1 r] + const.

It is maximised over ``G = L L'`` (Cholesky factor, diagonal >= 0) and
``lam = t^2`` (t >= 0) with L-BFGS-B from a few starts; the gradient is exact,
by complex-step differentiation (every operation above is analytic, so
``Im f(x + i h e_j) / h`` is the derivative to machine precision).

Standard errors reproduce statsmodels: the covariance of the fixed effects is
the fixed-effect block of the inverse of minus the Hessian of the (scale-
profiled, not beta-profiled) REML log-likelihood with respect to
``(beta, vech(G), lam)`` -- including the beta x variance cross terms, which
is why statsmodels' standard errors differ slightly from lme4's
``sigma^2 (X'V^-1 X)^-1``. The Hessian is obtained from the exact complex-step
gradient by central differences. Tests are Wald tests on the normal
distribution, as ``MixedLMResults`` does.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> cohort = np.repeat(np.arange(8), 40)
>>> person = np.repeat(np.arange(160), 2)
>>> post = np.tile([0.0, 1.0], 160)
>>> y = (40 + rng.normal(0, 2, 8)[cohort] + (rng.normal(-4, 1, 8)[cohort]) * post
...      + rng.normal(0, 5, 160)[person] + rng.normal(0, 3, 320))
>>> fit = fit_reml(cohort, person, post, y, slope=True)
>>> fit.converged, fit.fe_params.round(1).tolist()
(True, [39.7, -3.7])
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize
from threadpoolctl import ThreadpoolController

_H_COMPLEX = 1e-30  # complex step: no cancellation, so it can be tiny
SINGULAR_TOL = 1e-4  # lme4's isSingular() tolerance on the relative Cholesky factor


@dataclass
class _Stats:
    """Sums per cohort (C) and person size (K sizes m); 2 x 2 symmetric
    matrices are stored as their (00, 01, 11) components."""

    m: np.ndarray          # (K,) people's numbers of rows
    count: np.ndarray      # (K,) people of that size (all cohorts)
    a0: np.ndarray         # (3, C) X'X per cohort
    a1: np.ndarray         # (3, K, C) sum over people of (X'1)(1'X)
    b0: np.ndarray         # (2, C) X'y
    b1: np.ndarray         # (2, K, C) sum over people of (X'1)(1'y)
    s0: np.ndarray         # (C,) y'y
    s1: np.ndarray         # (K, C) sum over people of (1'y)^2
    n_obs: int

    def __post_init__(self):
        self.stacked0 = np.concatenate([*self.a0, *self.b0, self.s0])        # (6C,)
        self.stacked1 = np.concatenate([*self.a1, *self.b1, self.s1], axis=1)  # (K, 6C)


def _sums(cohort, person, x, y) -> _Stats:
    cohort_codes = pd.factorize(pd.Series(cohort), sort=False)[0]
    # People are nested in cohorts: the same label in two cohorts is two people.
    person_labels = pd.factorize(pd.Series(person), sort=False)[0]
    person_codes = pd.factorize(cohort_codes * np.int64(person_labels.max() + 1)
                                + person_labels, sort=False)[0]
    n_cohorts, n_people = cohort_codes.max() + 1, person_codes.max() + 1

    def per(codes, values, size):
        return np.bincount(codes, weights=values, minlength=size)

    one = np.ones_like(y)
    p_m, p_x, p_y = (per(person_codes, v, n_people) for v in (one, x, y))
    p_cohort = np.zeros(n_people, dtype=np.intp)
    p_cohort[person_codes] = cohort_codes
    sizes, size_codes = np.unique(p_m.astype(np.intp), return_inverse=True)
    k_sizes = len(sizes)
    flat = size_codes.ravel() * n_cohorts + p_cohort  # (size, cohort) cell of each person

    def cell(values):
        return per(flat, values, k_sizes * n_cohorts).reshape(k_sizes, n_cohorts)

    def coh(values):
        return per(cohort_codes, values, n_cohorts)

    return _Stats(m=sizes.astype(float), count=np.bincount(size_codes.ravel(), minlength=k_sizes),
                  a0=np.stack([coh(one), coh(x), coh(x * x)]),
                  a1=np.stack([cell(p_m * p_m), cell(p_m * p_x), cell(p_x * p_x)]),
                  b0=np.stack([coh(y), coh(x * y)]),
                  b1=np.stack([cell(p_m * p_y), cell(p_x * p_y)]),
                  s0=coh(y * y), s1=cell(p_y * p_y), n_obs=len(y))


def _inv(a):
    """Inverse of a batch of 2 x 2 matrices (analytic, complex-safe)."""
    det = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    out = np.empty_like(a)
    out[..., 0, 0], out[..., 1, 1] = a[..., 1, 1] / det, a[..., 0, 0] / det
    out[..., 0, 1], out[..., 1, 0] = -a[..., 0, 1] / det, -a[..., 1, 0] / det
    return out


def _sym(v):
    return np.array([[v[0], v[1]], [v[1], v[2]]])


def _det(a):
    return a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]


def _pieces(st: _Stats, g, lam):
    """X'V^-1X (B,2,2), X'V^-1y (B,2), y'V^-1y (B,), log det V (B,) for a batch B.

    ``g`` (B, q, q) and ``lam`` (B,) are relative to sigma^2; may be complex.
    Written out component by component: numpy is slow on batches of 2 x 2 matmuls.
    """
    q = g.shape[-1]
    c = lam[:, None] / (1 + st.m[None, :] * lam[:, None])             # (B, K)
    n_cohorts = st.s0.shape[0]
    # A = X'D^-1X etc. for all cohorts: (X'X ...) - sum over sizes of c_m (...); one
    # broadcast sum over the few sizes (a BLAS product here is slower: threads).
    shift = sum(c[:, k, None] * st.stacked1[k][None] for k in range(len(st.m)))
    a00, a01, a11, b0, b1, s = (st.stacked0[i * n_cohorts:(i + 1) * n_cohorts][None]
                                - shift[:, i * n_cohorts:(i + 1) * n_cohorts]
                                for i in range(6))
    logdet = np.log(1 + st.m[None, :] * lam[:, None]) @ st.count.astype(float)
    if q == 1:  # Z = first column of X; W = g / (1 + g a00)
        gg = g[:, 0, 0][:, None]
        den = 1 + gg * a00
        w = gg / den
        xvx = [a00 - w * a00 * a00, a01 - w * a00 * a01, a11 - w * a01 * a01]
        xvy = [b0 - w * b0 * a00, b1 - w * b0 * a01]
        yvy = s - w * b0 * b0
        logdet = logdet + np.log(den).sum(1)
    else:  # Z = X: X'V^-1X = R A, X'V^-1y = R b, W = G R with R = (I + A G)^-1
        g00, g01, g11 = (g[:, i, j][:, None] for i, j in ((0, 0), (0, 1), (1, 1)))
        p00, p01 = 1 + a00 * g00 + a01 * g01, a00 * g01 + a01 * g11   # P = I + A G
        p10, p11 = a01 * g00 + a11 * g01, 1 + a01 * g01 + a11 * g11
        det = p00 * p11 - p01 * p10
        r00, r01, r10, r11 = p11 / det, -p01 / det, -p10 / det, p00 / det
        xvx = [r00 * a00 + r01 * a01, r00 * a01 + r01 * a11, r10 * a01 + r11 * a11]
        rb0, rb1 = r00 * b0 + r01 * b1, r10 * b0 + r11 * b1
        xvy = [rb0, rb1]
        yvy = s - (b0 * (g00 * rb0 + g01 * rb1) + b1 * (g01 * rb0 + g11 * rb1))
        logdet = logdet + np.log(det).sum(1)
    x00, x01, x11 = (v.sum(1) for v in xvx)
    xvx_b = np.stack([np.stack([x00, x01], -1), np.stack([x01, x11], -1)], -2)
    return xvx_b, np.stack([v.sum(1) for v in xvy], -1), yvy.sum(1), logdet


def _loglike(st: _Stats, g, lam, beta=None):
    """REML log-likelihood, sigma^2 profiled out; beta profiled out when None."""
    xvx, xvy, yvy, logdet = _pieces(st, g, lam)
    if beta is None:
        beta = np.einsum("bij,bj->bi", _inv(xvx), xvy)
        rvr = yvy - np.einsum("bi,bi->b", beta, xvy)
    else:
        rvr = yvy - 2 * np.einsum("bi,bi->b", beta, xvy) + np.einsum(
            "bi,bij,bj->b", beta, xvx, beta)
    fac = st.n_obs - 2
    return (-0.5 * (logdet + np.log(_det(xvx)) + fac * np.log(rvr))
            - 0.5 * fac * np.log(2 * np.pi) + 0.5 * fac * np.log(fac) - 0.5 * fac)


def _unpack_cholesky(phi, q):
    """(B, P) -> G = L L' (B, q, q), lam = t^2 (B,)."""
    if q == 1:
        g = (phi[:, 0] ** 2)[:, None, None]
    else:
        l00, l10, l11 = phi[:, 0], phi[:, 1], phi[:, 2]
        g = np.empty((len(phi), 2, 2), dtype=phi.dtype)
        g[:, 0, 0] = l00 * l00
        g[:, 0, 1] = g[:, 1, 0] = l00 * l10
        g[:, 1, 1] = l10 * l10 + l11 * l11
    return g, phi[:, -1] ** 2


def _vech_to_g(v, q):
    """(B, q(q+1)/2) lower triangle (00[, 10, 11]) -> (B, q, q) symmetric."""
    if q == 1:
        return v[:, :1, None]
    g = np.empty((len(v), 2, 2), dtype=v.dtype)
    g[:, 0, 0], g[:, 1, 1] = v[:, 0], v[:, 2]
    g[:, 0, 1] = g[:, 1, 0] = v[:, 1]
    return g


def _value_and_gradient(f, x):
    """f at x and its exact gradient by complex step (one batched call)."""
    p = len(x)
    points = np.tile(x.astype(complex), (p, 1)) + 1j * _H_COMPLEX * np.eye(p)
    values = f(points)
    return float(values[0].real), values.imag / _H_COMPLEX


def _hessian(st: _Stats, beta, theta, q, steps):
    """Hessian of the scale-profiled REML log-likelihood in (beta, vech G, lam).

    beta enters only through r'V^-1r, a quadratic, so its derivatives are
    written out; the variance parameters' second derivatives are central
    differences of exact complex-step first derivatives. One batched call.
    """
    p = len(theta)
    eye = np.eye(p)
    step = 1j * _H_COMPLEX * eye                                        # (p, p): [j]
    shifted = (theta[None, None, None, :] + step[:, None, None, :]
               + np.array([1.0, -1.0])[None, :, None, None] * (steps[:, None] * eye)[None, None])
    points = np.concatenate([theta[None, :] + step, shifted.reshape(-1, p)])
    xvx, xvy, yvy, logdet = _pieces(st, _vech_to_g(points[:, :-1], q), points[:, -1])
    resid = xvy - np.einsum("bij,j->bi", xvx, beta)                    # X'V^-1 (y - X beta)
    rvr = yvy - 2 * xvy @ beta + np.einsum("i,bij,j->b", beta, xvx, beta)
    fac = st.n_obs - 2
    loglike = -0.5 * (logdet + np.log(_det(xvx)) + fac * np.log(rvr))
    score_beta = fac * resid / rvr[:, None]                            # d loglike / d beta
    h_bt = score_beta[:p].imag.T / _H_COMPLEX                          # (2, p)
    d1 = loglike[p:].imag.reshape(p, 2, p) / _H_COMPLEX                 # [j, sign, i]
    h_tt = (d1[:, 0, :] - d1[:, 1, :]) / (2 * steps[None, :])
    h_tt = (h_tt + h_tt.T) / 2
    x0, r0, rvr0 = xvx[0].real, resid[0].real, rvr[0].real
    h_bb = -fac * x0 / rvr0 + 2 * fac * np.outer(r0, r0) / rvr0**2
    return np.block([[h_bb, h_bt], [h_bt.T, h_tt]])


@dataclass
class Fit:
    """A REML fit; variances in the data's units (multiplied by ``scale``)."""

    fe_params: np.ndarray          # (p,) fixed effects (intercept, slope of x)
    cov_fe: np.ndarray             # (p, p) as statsmodels' cov_params() block
    cov_fe_gls: np.ndarray         # (p, p) sigma^2 (X'V^-1X)^-1, lme4's vcov()
    scale: float                   # residual variance sigma^2
    cov_re: np.ndarray             # (q, q) cohort covariance (0 x 0 without cohort effects)
    vcomp: float                   # participant variance
    llf: float                     # REML log-likelihood (statsmodels' constant)
    converged: bool
    flags: list[str] = field(default_factory=list)
    theta: np.ndarray | None = None  # (L00[, L10, L11], t): G / scale = L L', lam = t^2

    @property
    def slope_singular(self) -> bool:
        """The cohorts' change has no variance of its own (slope fits only).

        True when the slope variance is ~0 or the slope is perfectly correlated
        with the intercept (Cholesky L11 ~ 0 while L00 is not): lme4's singular
        fit in the slope direction. A zero intercept variance alone is not.
        """
        if self.theta is None or len(self.theta) != 4:
            return False
        l00, l10, l11 = self.theta[:3]
        return bool(l11 < SINGULAR_TOL and (l00 >= SINGULAR_TOL or abs(l10) < SINGULAR_TOL))

    @property
    def bse_fe(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.cov_fe))


def fit_reml(cohort, person, x, y, slope: bool = True, starts=None) -> Fit:
    """REML fit of ``y ~ x + (1 [+ x] | cohort) + (1 | person in cohort)``.

    ``cohort`` and ``person`` are labels (people are nested in cohorts), ``x``
    and ``y`` numbers; rows with a missing value must be dropped beforehand.
    ``flags`` may hold ``boundary_fit`` (a variance below 0.01 or a singular
    cohort covariance, statsmodels' test plus the singular case) and
    ``convergence_warning`` (the optimiser did not converge).
    """
    # Trial points of the optimiser may be degenerate (a log of 0): not worth a warning.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _fit_reml(cohort, person, x, y, slope, starts)


def _fit_reml(cohort, person, x, y, slope, starts) -> Fit:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("missing or infinite values in x or y")
    if pd.isna(np.asarray(cohort)).any() or pd.isna(np.asarray(person)).any():
        raise ValueError("missing cohort or participant labels")
    # Sums of squares lose digits to a large mean: fit y - mean (REML does not change).
    shift = float(y.mean()) if len(y) else 0.0
    st = _sums(np.asarray(cohort), np.asarray(person), x, y - shift)
    if st.n_obs <= 2 or np.linalg.matrix_rank(_sym(st.a0.sum(1))) < 2:
        raise ValueError("the fixed effects are not estimable (x does not vary)")
    q = 2 if slope else 1
    n = st.n_obs

    def objective(phi_batch):
        g, lam = _unpack_cholesky(phi_batch, q)
        return -_loglike(st, g, lam) / n

    if starts is None:  # statsmodels' start (G = I, lam = 1) and smaller variances
        starts = [np.r_[np.eye(q)[np.tril_indices(q)], 1.0],
                  np.r_[0.2 * np.eye(q)[np.tril_indices(q)], 0.7]]
    bounds = [(0, None), (None, None), (0, None), (0, None)] if q == 2 else [(0, None)] * 2
    phi, best_fun, converged = _minimise(objective, starts, bounds)
    lower = np.array([b[0] == 0 for b in bounds])
    g, lam = _unpack_cholesky(phi[None], q)
    xvx, xvy, yvy, _ = _pieces(st, g, lam)
    beta = np.linalg.solve(xvx[0], xvy[0])
    scale = float((yvy[0] - beta @ xvy[0]) / (n - 2))
    if not (np.isfinite(beta).all() and np.isfinite(scale) and scale > 0):
        raise ValueError("the model is not estimable (no residual variance)")

    # statsmodels' covariance: inverse of minus the Hessian in (beta, vech G, lam).
    tril = np.tril_indices(q)
    theta = np.r_[g[0][tril].real, lam[0].real]
    g_scale = max(float(np.abs(np.diag(g[0].real)).max()), 1e-3)
    steps = np.r_[np.full(len(tril[0]), 1e-5 * g_scale), 1e-5 * max(lam[0].real, 1e-3)]
    hess = _hessian(st, beta, theta, q, steps)
    try:
        cov = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
    cov_fe = cov[:2, :2]

    cov_re, vcomp = g[0].real * scale, float(lam[0].real) * scale
    return Fit(fe_params=beta + np.array([shift, 0.0]), cov_fe=cov_fe,
               cov_fe_gls=scale * np.linalg.inv(xvx[0].real), scale=scale, cov_re=cov_re,
               vcomp=vcomp, llf=float(-best_fun * n), converged=converged,
               flags=_flags(cov_re, vcomp, phi[lower], converged), theta=phi)


@functools.cache
def _blas() -> ThreadpoolController:
    """The loaded BLAS libraries, looked up once (each lookup reads /proc/self/maps)."""
    return ThreadpoolController()


def _minimise(objective, starts, bounds) -> tuple[np.ndarray, float, bool]:
    """L-BFGS-B from each start with the exact gradient: (best point, value, converged)."""
    def fun(phi):
        return _value_and_gradient(objective, phi)

    lower = np.array([b[0] == 0 for b in bounds])
    # L-BFGS-B calls BLAS on 4-vectors: threads only cost time (4x on a busy machine)
    with _blas().limit(limits=1, user_api="blas"):
        results = [optimize.minimize(fun, np.asarray(start, dtype=float), jac=True,
                                     method="L-BFGS-B", bounds=bounds,
                                     options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 1000})
                   for start in starts]
    best = min(results, key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
    phi = best.x
    # Converged = projected gradient ~0 (L-BFGS-B may stop on a line search that cannot
    # improve at full precision: that is a converged fit too).
    _, grad = fun(phi)
    projected = np.where(lower & (phi <= 0) & (grad > 0), 0.0, grad)
    return phi, best.fun, bool(np.abs(projected).max() < 1e-6)


def _flags(cov_re: np.ndarray, vcomp: float, bounded: np.ndarray, converged: bool) -> list[str]:
    """``boundary_fit`` (statsmodels' test: a variance under 0.01; or lme4's isSingular():
    a relative Cholesky diagonal or t within 1e-4 of its bound 0) and ``convergence_warning``."""
    variances = np.r_[np.abs(np.diag(cov_re)), vcomp]
    flags = []
    if variances.min() < 0.01 or bool((bounded < SINGULAR_TOL).any()):
        flags.append("boundary_fit")
    if not converged:
        flags.append("convergence_warning")
    return flags


# ---- y = X beta + (1 | person) + e: any fixed design, a random intercept per person ----
# The cohort fixed-effects model of change (X = per-cohort intercepts and changes). V is
# sigma^2 D with D = I + lam J per person, so X'V^-1X, X'V^-1y and y'V^-1y are, for any
# lam, fixed combinations of X'X, X'y, y'y and per-person-size sums of (X'1)(1'X),
# (X'1)(1'y), (1'y)^2: precomputed once, then each likelihood is p x p algebra.

@dataclass
class _PersonStats:
    xx: np.ndarray      # (p, p) X'X
    xy: np.ndarray      # (p,) X'y
    yy: float           # y'y
    m: np.ndarray       # (K,) people's numbers of rows
    count: np.ndarray   # (K,) people of that size
    uu: np.ndarray      # (K, p, p) sum over people of that size of (X'1)(1'X)
    uy: np.ndarray      # (K, p) ... of (X'1)(1'y)
    yy1: np.ndarray     # (K,) ... of (1'y)^2
    n_obs: int


def _person_sums(design: np.ndarray, person, y: np.ndarray) -> _PersonStats:
    codes = pd.factorize(pd.Series(person), sort=False)[0]
    n_people = codes.max() + 1
    u = np.stack([np.bincount(codes, weights=column, minlength=n_people)
                  for column in design.T], axis=1)                      # (people, p) X'1
    t = np.bincount(codes, weights=y, minlength=n_people)               # 1'y
    sizes, size_of = np.unique(np.bincount(codes), return_inverse=True)
    groups = [size_of == k for k in range(len(sizes))]
    return _PersonStats(xx=design.T @ design, xy=design.T @ y, yy=float(y @ y),
                        m=sizes.astype(float), count=np.bincount(size_of),
                        uu=np.stack([u[g].T @ u[g] for g in groups]),
                        uy=np.stack([u[g].T @ t[g] for g in groups]),
                        yy1=np.array([t[g] @ t[g] for g in groups]), n_obs=len(y))


def _person_pieces(st: _PersonStats, lam):
    """X'D^-1X (B,p,p), X'D^-1y (B,p), y'D^-1y (B,), log det D (B,) for lam (B,), maybe complex."""
    c = lam[:, None] / (1 + st.m[None, :] * lam[:, None])              # (B, K)
    logdet = np.log(1 + st.m[None, :] * lam[:, None]) @ st.count.astype(float)
    return (st.xx[None] - np.einsum("bk,kij->bij", c, st.uu), st.xy[None] - c @ st.uy,
            st.yy - c @ st.yy1, logdet)


def _person_loglike(st: _PersonStats, lam, beta=None):
    """REML log-likelihood (statsmodels' form), sigma^2 profiled out; beta too when None.

    Returns (log-likelihood, X'V^-1(y - X beta), r'V^-1r) per lam, as sigma^2 times.
    """
    xvx, xvy, yvy, logdet = _person_pieces(st, lam)
    if beta is None:
        beta = np.linalg.solve(xvx, xvy[..., None])[..., 0]
        resid = np.zeros_like(xvy)
        rvr = yvy - np.einsum("bi,bi->b", beta, xvy)
    else:
        resid = xvy - np.einsum("bij,j->bi", xvx, beta)
        rvr = (yvy - 2 * xvy @ beta) + np.einsum("i,bij,j->b", beta, xvx, beta)
    sign, logabs = np.linalg.slogdet(xvx)
    fac = st.n_obs - st.xx.shape[0]
    loglike = (-0.5 * (logdet + np.log(sign) + logabs + fac * np.log(rvr))
               - 0.5 * fac * np.log(2 * np.pi) + 0.5 * fac * np.log(fac) - 0.5 * fac)
    return loglike, resid, rvr


def _person_hessian(st: _PersonStats, beta, lam: float, step: float):
    """Hessian of the scale-profiled REML log-likelihood in (beta, lam), as :func:`_hessian`:
    beta's derivatives written out, lam's by complex step (and central differences)."""
    points = lam + np.array([0.0, step, -step]) + 1j * _H_COMPLEX
    loglike, resid, rvr = _person_loglike(st, points, beta)
    fac = st.n_obs - len(beta)
    d1 = loglike[1:].imag / _H_COMPLEX
    h_tt = (d1[0] - d1[1]) / (2 * step)
    h_bt = (fac * resid[0] / rvr[0]).imag / _H_COMPLEX
    xvx = _person_pieces(st, np.array([lam]))[0][0]
    r0, rvr0 = resid[0].real, rvr[0].real
    h_bb = -fac * xvx / rvr0 + 2 * fac * np.outer(r0, r0) / rvr0**2
    return np.block([[h_bb, h_bt[:, None]], [h_bt[None, :], np.array([[h_tt]])]])


def fit_reml_person(design, person, y, starts=None) -> Fit:
    """REML fit of ``y ~ 0 + design + (1 | person)``: any fixed design, a random
    intercept per person (``person`` labels; rows with a missing value dropped beforehand).

    The same model and figures as statsmodels' ``MixedLM(y, design, groups=person)``
    (REML; covariance of the fixed effects from the Hessian in fixed effects and the
    person variance, cross terms included) and lme4's
    ``lmer(y ~ 0 + design + (1 | person))`` (``cov_fe_gls`` is its ``vcov``). Flags as
    :func:`fit_reml`. ``cov_re`` is empty: the person variance is ``vcomp``.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> person = np.repeat(np.arange(60), 2)
    >>> post = np.tile([0.0, 1.0], 60)
    >>> y = 40 - 3 * post + rng.normal(0, 4, 60)[person] + rng.normal(0, 2, 120)
    >>> fit = fit_reml_person(np.c_[np.ones(120), post], person, y)
    >>> fit.converged, fit.fe_params.round(1).tolist(), round(fit.vcomp), round(fit.scale)
    (True, [40.3, -3.2], 16, 4)
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _fit_reml_person(design, person, y, starts)


def _fit_reml_person(design, person, y, starts) -> Fit:
    design, y = np.asarray(design, dtype=float), np.asarray(y, dtype=float)
    if not (np.isfinite(design).all() and np.isfinite(y).all()):
        raise ValueError("missing or infinite values in the design or y")
    if pd.isna(np.asarray(person)).any():
        raise ValueError("missing participant labels")
    n, p = design.shape
    if n <= p or np.linalg.matrix_rank(design) < p:
        raise ValueError("the fixed effects are not estimable (a cohort seen at one wave only)")
    # Sums of squares lose digits to a large mean: fit y - mean when the design holds
    # the constant (design @ ones_weights = 1), and shift the estimates back.
    ones_weights = np.linalg.lstsq(design, np.ones(n), rcond=None)[0]
    shift = float(y.mean()) if np.allclose(design @ ones_weights, 1.0) else 0.0
    st = _person_sums(design, person, y - shift)

    def objective(phi_batch):
        return -_person_loglike(st, phi_batch[:, 0] ** 2)[0] / n

    phi, best_fun, converged = _minimise(
        objective, [np.array([1.0]), np.array([0.7])] if starts is None else starts,
        [(0, None)])
    lam = float(phi[0] ** 2)
    xvx, xvy, yvy, _ = _person_pieces(st, np.array([lam]))
    beta = np.linalg.solve(xvx[0], xvy[0])
    scale = float((yvy[0] - beta @ xvy[0]) / (n - p))
    if not (np.isfinite(beta).all() and np.isfinite(scale) and scale > 0):
        raise ValueError("the model is not estimable (no residual variance)")
    hess = _person_hessian(st, beta, lam, 1e-5 * max(lam, 1e-3))
    try:
        cov = np.linalg.inv(-hess)
    except np.linalg.LinAlgError:
        cov = np.full_like(hess, np.nan)
    cov_re, vcomp = np.zeros((0, 0)), lam * scale
    return Fit(fe_params=beta + shift * ones_weights, cov_fe=cov[:p, :p],
               cov_fe_gls=scale * np.linalg.inv(xvx[0]), scale=scale, cov_re=cov_re,
               vcomp=vcomp, llf=float(-best_fun * n), converged=converged,
               flags=_flags(cov_re, vcomp, phi, converged), theta=phi)
