"""Factor models behind omega: minres factoring, oblimin rotation, Schmid-Leiman.

These follow R psych (``fa`` with ``fm="minres"``, ``schmid``, ``omega``) and
GPArotation (``oblimin`` by gradient projection) step by step, so omega here
agrees with ``psych::omega``. Functions return ``(value, flags)``: a model that
cannot be fitted gives NaN and a flag, never an exception.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

PSI_BOUNDS = (0.005, 1.0)  # psych's bounds on uniquenesses in minres


def squared_multiple_correlations(r: np.ndarray) -> np.ndarray:
    """Each item's R^2 on all other items (psych::smc), from correlation matrices.

    ``r`` is one k x k matrix or a stack (groups x k x k). 1 - 1/diag(R^-1);
    where R is singular (e.g. two identical items) each R^2 comes from a
    least-squares regression instead, which stays defined.

    Examples
    --------
    >>> squared_multiple_correlations(np.array([[1, .5], [.5, 1]])).round(2)
    array([0.25, 0.25])
    """
    r = np.asarray(r, dtype=float)
    if r.ndim == 2:
        return squared_multiple_correlations(r[None])[0]
    out = np.empty(r.shape[:2])
    if len(r) == 0:
        return out
    good = np.linalg.cond(r) < 1e12
    if good.any():
        out[good] = 1 - 1 / np.diagonal(np.linalg.inv(r[good]), axis1=1, axis2=2)
    if (~good).any():
        out[~good] = _smc_least_squares(r[~good])
    return out


def _smc_least_squares(r: np.ndarray) -> np.ndarray:
    """Each item's R^2 = r_jo pinv(R_oo) r_jo for stacked singular R (one batched pinv per item)."""
    k = r.shape[1]
    smc = np.empty(r.shape[:2])
    for j in range(k):
        others = np.delete(np.arange(k), j)
        r_jo = r[:, others, j]
        inv = np.linalg.pinv(r[:, others][:, :, others])
        smc[:, j] = np.einsum("gi,gij,gj->g", r_jo, inv, r_jo)
    return np.clip(smc, 0, 1)


def _loadings_given_psi(r: np.ndarray, psi: np.ndarray, nf: int) -> np.ndarray:
    reduced = r.copy()
    np.fill_diagonal(reduced, 1 - psi)
    values, vectors = np.linalg.eigh(reduced)
    order = np.argsort(values)[::-1][:nf]
    values = np.maximum(values[order], 100 * np.finfo(float).eps)
    return vectors[:, order] * np.sqrt(values)


def _residual_ss(psi: np.ndarray, r: np.ndarray, nf: int) -> float:
    loadings = _loadings_given_psi(r, psi, nf)
    residual = r - loadings @ loadings.T
    np.fill_diagonal(residual, 0)
    return float((residual**2).sum())


def _residual_ss_grad(psi: np.ndarray, r: np.ndarray, nf: int) -> tuple[float, np.ndarray]:
    """:func:`_residual_ss` and its analytic gradient over psi (one eigendecomposition).

    With R - diag(psi) = V diag(l) V' and the model M its top ``nf`` eigen-part,
    dM/dpsi_i = -V (D * u_i u_i') V' (u_i row i of V; D the divided differences
    of the eigenvalues: 1 within the top nf, l_a / (l_a - l_b) between a top a
    and another b, 0 elsewhere), and the diagonal of R - diag(psi) does not
    enter the off-diagonal residual O, so d SS/dpsi_i = 2 u_i' (D * V'OV) u_i.
    Where a top eigenvalue is clamped (not positive) it falls back to differences.
    """
    k = len(psi)
    reduced = r.copy()
    np.fill_diagonal(reduced, 1 - psi)
    values, vectors = np.linalg.eigh(reduced)
    values, vectors = values[::-1], vectors[:, ::-1]  # descending
    if values[nf - 1] <= 100 * np.finfo(float).eps or (nf < k and values[nf - 1] - values[nf] < 1e-12):
        return _residual_ss(psi, r, nf), optimize.approx_fprime(psi, _residual_ss, 1e-8, r, nf)
    loadings = vectors[:, :nf] * np.sqrt(values[:nf])
    residual = reduced - loadings @ loadings.T
    np.fill_diagonal(residual, 0)
    top = np.arange(k) < nf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = values[:, None] / (values[:, None] - values[None, :])
    d = np.where(top[:, None] & top[None, :], 1.0, 0.0)
    d = np.where(top[:, None] & ~top[None, :], ratio, d)
    d = np.where(~top[:, None] & top[None, :], ratio.T, d)
    w = vectors.T @ residual @ vectors
    grad = 2 * ((vectors @ (d * w)) * vectors).sum(axis=1)
    return float((residual**2).sum()), grad


def minres(r: np.ndarray, nf: int) -> np.ndarray:
    """Unrotated minimum-residual factor loadings of a correlation matrix.

    Minimises the squared off-diagonal residuals over the uniquenesses
    (bounded to [0.005, 1], starting from 1 - smc), as ``psych::fa(fm="minres")``.

    Examples
    --------
    >>> r = np.full((4, 4), 0.49); np.fill_diagonal(r, 1)
    >>> np.abs(minres(r, 1)).round(3).ravel().tolist()
    [0.7, 0.7, 0.7, 0.7]
    """
    start = np.clip(1 - squared_multiple_correlations(r), *PSI_BOUNDS)
    fit = optimize.minimize(_residual_ss_grad, start, args=(r, nf), method="L-BFGS-B", jac=True,
                            bounds=[PSI_BOUNDS] * len(start),
                            options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000})
    loadings = _loadings_given_psi(r, fit.x, nf)
    # Sign convention: each factor's loadings sum to a positive number.
    return loadings * np.where(loadings.sum(axis=0) < 0, -1, 1)


def _oblimin_criterion(loadings: np.ndarray) -> tuple[float, np.ndarray]:
    """GPArotation's vgQ.oblimin with gamma = 0 (quartimin): value and gradient."""
    nf = loadings.shape[1]
    cross = (loadings**2) @ (1 - np.eye(nf))
    return float((loadings**2 * cross).sum() / 4), loadings * cross


def oblimin(a: np.ndarray, eps: float = 1e-5, max_iter: int = 1000):
    """Oblique quartimin (oblimin, gamma 0) rotation by gradient projection.

    Port of GPArotation's ``GPFoblq`` from the identity start (its defaults).
    Returns rotated loadings, factor correlations Phi and whether it converged.
    """
    t = np.eye(a.shape[1])
    loadings = a @ np.linalg.inv(t).T
    f, gq = _oblimin_criterion(loadings)
    g = -(loadings.T @ gq @ np.linalg.inv(t)).T
    step = 1.0
    converged = False
    for _ in range(max_iter + 1):
        gp = g - t @ np.diag((t * g).sum(axis=0))
        if np.sqrt((gp**2).sum()) < eps:
            converged = True
            break
        step *= 2
        for _ in range(11):
            x = t - step * gp
            t_new = x / np.sqrt((x**2).sum(axis=0))
            loadings = a @ np.linalg.inv(t_new).T
            f_new, gq = _oblimin_criterion(loadings)
            if f - f_new > 0.5 * (gp**2).sum() * step:
                break
            step /= 2
        t, f = t_new, f_new
        g = -(loadings.T @ gq @ np.linalg.inv(t_new)).T
    return loadings, t.T @ t, converged


def _correlation_or_none(x: np.ndarray) -> np.ndarray | None:
    # A factor model needs more people than items (else R is singular) and 3+ items.
    if x.shape[0] <= x.shape[1] or x.shape[1] < 3 or np.any(x.std(axis=0, ddof=1) == 0):
        return None
    return np.corrcoef(x, rowvar=False)


def omega_total(x: np.ndarray) -> tuple[float, list[str]]:
    """Omega total from a one-factor minres model, as ``psych::omega(nfactors=1, flip=FALSE)``.

    omega_t = (sum(R) - sum(u2)) / sum(R), with u2 = 1 - loading^2 the
    uniquenesses. Needs 3 items or more, more people than items and no constant item.
    The items are taken as declared and scored (already reverse-keyed): psych's
    default ``flip=TRUE`` would silently reverse items that load negatively and
    report the omega of another scale.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(500, 1)) + rng.normal(size=(500, 5))
    >>> value, flags = omega_total(x)
    >>> round(value, 2), flags
    (0.81, [])
    """
    r = _correlation_or_none(x)
    if r is None:
        return float("nan"), ["omega_not_estimable"]
    loadings = minres(r, 1)
    u2 = 1 - (loadings**2).sum(axis=1)
    flags = ["heywood_case"] if np.any(u2 <= PSI_BOUNDS[0] + 1e-9) else []
    return float((r.sum() - u2.sum()) / r.sum()), flags


def schmid_leiman(r: np.ndarray, nf: int):
    """Schmid-Leiman general and group loadings, as ``psych::schmid`` (oblimin).

    Returns (g loadings, group loadings, communalities, flags).
    """
    unrotated = minres(r, nf)
    pattern, phi, converged = oblimin(unrotated)
    flags = [] if converged else ["rotation_not_converged"]
    if nf == 2:
        # Two factors identify g only with equal loadings on it (psych's "equal").
        gload = np.full(2, np.sqrt(max(phi[0, 1], 0.0)))
        flags.append("omega_h_two_factors")
    else:
        gload = minres(phi, 1).ravel()
    general = pattern @ gload
    group = pattern * np.sqrt(np.clip(1 - gload**2, 0, None))
    communality = (unrotated**2).sum(axis=1)
    return general, group, communality, flags


def omega_hierarchical(x: np.ndarray, groups: list[list[int]]) -> tuple[float, list[str]]:
    """Omega hierarchical: share of total-score variance due to a general factor.

    Schmid-Leiman on ``len(groups)`` oblimin factors (exploratory, as
    ``psych::omega(nfactors=len(groups))``); ``groups`` (the subscales) only
    set how many group factors there are. omega_h = (sum g)^2 / sum(R).

    References
    ----------
    Zinbarg, R. E., Revelle, W., Yovel, I., & Li, W. (2005). Cronbach's alpha,
    Revelle's beta, and McDonald's omega_h. Psychometrika, 70, 123-133.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> g, s = rng.normal(size=(800, 1)), rng.normal(size=(800, 3))
    >>> x = 0.6 * g + 0.5 * np.repeat(s, 3, axis=1) + 0.6 * rng.normal(size=(800, 9))
    >>> value, flags = omega_hierarchical(x, [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    >>> round(value, 2), flags  # population value 0.745
    (0.75, [])
    """
    nf = len(groups)
    r = _correlation_or_none(x)
    if r is None or nf < 2 or x.shape[1] < 2 * nf:
        return float("nan"), ["omega_h_not_estimable"]
    general, _, _, flags = schmid_leiman(r, nf)
    return float(general.sum() ** 2 / r.sum()), flags
