"""Omega total and omega hierarchical of many scales at once (the factor models, batched).

:func:`omega_total_many` and :func:`omega_h_many` fit the factor models of
:mod:`pipelines.analysis.factor` for every scale with the same number of items
together:

* omega total and omega hierarchical: :func:`minres_many`, Newton on the
  uniquenesses for all groups with k items at once (profile criterion: sum of
  squared eigenvalues beyond ``nf`` of R - diag(psi), analytic gradient and
  Hessian, made positive definite), each step backtracked until minres' own
  criterion (off-diagonal residual SS) does not rise, so the path descends from
  1 - smc as psych's minres does. Its interior solutions are the stationary
  points psych's minres converges to (psych's gradient is the diagonal
  residual). The Hessian is summed by eigen-blocks in O(nf k^3), not O(k^4).
  Then oblimin (gradient projection, GPArotation's line search) in lockstep
  over groups and the one-factor step on Phi;
* a model whose Newton solution is not an interior stationary point (a
  uniqueness on a bound: a Heywood case) is the bounded problem psych solves
  with L-BFGS-B: :func:`~pipelines.analysis.factor.minres` solves it, for
  that scale and step only. psych's two-factor rule and non-finite results
  use :func:`~pipelines.analysis.factor.omega_hierarchical`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from pipelines.analysis import factor
from pipelines.analysis.factor import squared_multiple_correlations

NEWTON_TOL = 1e-12


# ---- one-factor minres (omega total) ------------------------------------------

def one_factor_uls(r: np.ndarray, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Loadings minimising the squared off-diagonal residuals, for stacked R (g x k x k).

    Newton's method from the first principal-axis step (diagonal = smc), step
    halved while the criterion rises. Returns (loadings, ok): ``ok`` is False
    where it did not converge, a uniqueness is at or below psych's bound 0.005,
    or the loadings are not the top eigenvector of the reduced matrix (not the
    solution minres finds); those groups are solved by factor.minres.
    """
    g, k, _ = r.shape
    off = r.copy()
    off[:, np.arange(k), np.arange(k)] = 0.0
    smc = squared_multiple_correlations(r)
    reduced = off.copy()
    reduced[:, np.arange(k), np.arange(k)] = np.clip(smc, 1 - factor.PSI_BOUNDS[1],
                                                     1 - factor.PSI_BOUNDS[0])
    values, vectors = np.linalg.eigh(reduced)
    lam = vectors[:, :, -1] * np.sqrt(np.maximum(values[:, -1:], 1e-6))

    def criterion(o, l_):
        res = o - l_[:, :, None] * l_[:, None, :]
        res[:, np.arange(k), np.arange(k)] = 0.0
        return (res**2).sum(axis=(1, 2))

    f = criterion(off, lam)
    eye = np.eye(k, dtype=bool)
    done = np.zeros(g, bool)
    for _ in range(max_iter):
        active = ~done
        if not active.any():
            break
        lo, ro = lam[active], off[active]
        ss = (lo**2).sum(axis=1, keepdims=True) - lo**2
        grad = -4 * ((ro @ lo[..., None])[..., 0] - lo * ss)
        hess = -4 * (ro - 2 * lo[:, :, None] * lo[:, None, :])
        hess[:, eye] = 4 * ss
        try:
            step = np.linalg.solve(hess, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = np.full_like(lo, np.nan)
        fa = f[active]
        new, fn = lo - step, np.full(len(lo), np.inf)
        shrink = np.ones(len(lo))
        for _ in range(30):
            fn_try = criterion(ro, new)
            better = fn_try <= fa * (1 + 1e-15) + 1e-300
            fn = np.where(better, fn_try, fn)
            if better.all():
                break
            shrink = np.where(better, shrink, shrink / 2)
            new = np.where(better[:, None], new, lo - shrink[:, None] * step)
        fn = np.where(np.isfinite(fn), fn, fa)
        new = np.where(np.isfinite(fn)[:, None] & np.isfinite(new), new, lo)
        conv = np.abs(grad).max(axis=1) < NEWTON_TOL
        moved = np.abs(new - lo).max(axis=1)
        lam[active], f[active] = new, fn
        idx = np.flatnonzero(active)
        done[idx[conv | (moved < 1e-15)]] = True
    ss = (lam**2).sum(axis=1, keepdims=True) - lam**2
    grad = -4 * ((off @ lam[..., None])[..., 0] - lam * ss)
    top = np.linalg.eigvalsh(off + np.einsum("gi,ij->gij", lam**2, np.eye(k)))[:, -1]
    norm2 = (lam**2).sum(axis=1)
    ok = (np.abs(grad).max(axis=1) < 1e-9) & np.isfinite(lam).all(axis=1)
    ok &= (1 - lam**2 > factor.PSI_BOUNDS[0] + 1e-6).all(axis=1)
    ok &= np.abs(top - norm2) <= 1e-9 * np.maximum(1.0, norm2)
    return lam * np.where(lam.sum(axis=1, keepdims=True) < 0, -1, 1), ok


def omega_total_many(xs: list[np.ndarray], rs: list[np.ndarray | None] | None = None
                     ) -> list[tuple[float, list[str]]]:
    """:func:`factor.omega_total` of each matrix (people x items), batched by k.

    ``rs``: their correlation matrices, None where omega is not estimable, as
    :func:`factor._correlation_or_none` gives them (computed when not given).
    """
    out: list = [None] * len(xs)
    by_k = defaultdict(list)
    if rs is None:
        rs = [factor._correlation_or_none(x) for x in xs]
    for i, (x, r) in enumerate(zip(xs, rs)):
        if r is None:
            out[i] = (float("nan"), ["omega_not_estimable"])
        else:
            by_k[x.shape[1]].append((i, r))
    for members in by_k.values():
        r = np.stack([m[1] for m in members])
        loadings, ok = minres_many(r, 1)
        lam = loadings[..., 0]
        total = r.sum(axis=(1, 2))
        omega = (total - (1 - lam**2).sum(axis=1)) / total
        for (i, _), value, good in zip(members, omega, ok):
            out[i] = (float(value), []) if good else factor.omega_total(xs[i])
    return out


# ---- nf-factor minres and Schmid-Leiman (omega hierarchical) -------------------

def _decompose(psi: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ascending eigen-decompositions of R - diag(psi) (stacked): the nf factors are the last nf."""
    k = r.shape[1]
    a = r.copy()
    a[:, np.arange(k), np.arange(k)] = 1 - psi
    return np.linalg.eigh(a)


def _offdiag_ss(r: np.ndarray, nf: int, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """:func:`factor._residual_ss` of stacked R and psi, given :func:`_decompose` of them."""
    k = r.shape[1]
    idx = np.arange(k)
    top = vectors[:, :, k - nf:] * np.sqrt(np.maximum(values[:, k - nf:],
                                                     100 * np.finfo(float).eps))[:, None, :]
    res = r - top @ top.transpose(0, 2, 1)
    res[:, idx, idx] = 0.0  # the diagonal (1 - psi) does not enter
    return (res**2).sum(axis=(1, 2))


def _profile_hessian(values: np.ndarray, vectors: np.ndarray, nf: int) -> np.ndarray:
    """Hessian over psi of sum_{a > nf} lambda_a(R - diag psi)^2, stacked (g x k x k).

    H_ij = 2 sum_ab D_ab (V_ia V_ja)(V_ib V_jb), D the divided differences: 1
    between two of the k - nf smallest eigenvalues, l_a / (l_a - l_b) between
    such an a and a factor b, 0 between factors. Summed by blocks, O(nf k^3)
    instead of O(k^4): the (small, small) block is P o P with P = V_s V_s' the
    projector off the factors, each factor b adds 2 (v_b v_b') o (V_s diag(D_sb) V_s').
    """
    k = values.shape[1]
    small, vs = values[:, :k - nf], vectors[:, :, :k - nf]
    proj = vs @ vs.transpose(0, 2, 1)
    hess = proj * proj
    for b in range(k - nf, k):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = small / (small - values[:, b:b + 1])
        vb = vectors[:, :, b]
        hess += 2 * (vb[:, :, None] * vb[:, None, :]) * ((vs * ratio[:, None, :])
                                                         @ vs.transpose(0, 2, 1))
    return 2 * hess


def _newton_step(grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """Modified Newton step: the Hessian's eigenvalues made positive (|h|, floored),
    so the step is a descent direction of the profile criterion."""
    try:
        hv, hq = np.linalg.eigh(hess)
    except np.linalg.LinAlgError:
        return np.full_like(grad, np.nan)
    floor = 1e-8 * np.maximum(np.abs(hv).max(axis=1, keepdims=True), 1e-300)
    hv = np.maximum(np.abs(hv), floor)
    return (hq @ ((hq.transpose(0, 2, 1) @ grad[..., None]) / hv[..., None]))[..., 0]


def minres_many(r: np.ndarray, nf: int, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Unrotated minres loadings (g x k x nf) of stacked R, as :func:`factor.minres`.

    Newton on psi for the profile criterion sum_{a > nf} lambda_a(R - diag psi)^2
    (gradient -2 diag(E), E the part of R - diag psi beyond nf factors; Hessian
    from the divided differences of the eigenvalues). Its interior minimum is
    the minimum of minres' own off-diagonal criterion. Returns (loadings, ok).

    One eigendecomposition per group and iteration: that of the accepted trial
    point is kept for the next iteration's gradient, Hessian and criterion
    (more only while a step is halved).
    """
    g, k, _ = r.shape
    psi = np.clip(1 - squared_multiple_correlations(r), *factor.PSI_BOUNDS)
    values, vectors = _decompose(psi, r)
    f = _offdiag_ss(r, nf, values, vectors)
    done = np.zeros(g, bool)
    at_bound = np.zeros(g, int)  # consecutive iterations with a uniqueness on a bound
    for _ in range(max_iter):
        act = np.flatnonzero(~done)
        if act.size == 0:
            break
        va, ve = values[act], vectors[act]
        grad = -2 * np.einsum("gia,ga->gi", ve[:, :, :k - nf] ** 2, va[:, :k - nf])
        conv = np.abs(grad).max(axis=1) < NEWTON_TOL
        done[act[conv]] = True
        keep = ~conv
        if not keep.any():
            break
        act, va, ve, grad = act[keep], va[keep], ve[keep], grad[keep]
        step = _newton_step(grad, _profile_hessian(va, ve, nf))
        new, new_values, new_vectors, f_new, better = _backtrack(psi[act], r[act], nf, step,
                                                                 f[act])
        p = psi[act]
        moved = np.abs(new - p).max(axis=1) < 1e-15
        bad = ~np.isfinite(new).all(axis=1) | ~better | moved
        good = act[~bad]
        psi[good], f[good] = new[~bad], f_new[~bad]
        values[good], vectors[good] = new_values[~bad], new_vectors[~bad]
        done[act[bad]] = True
        # A minimum on a bound is not a stationary point of the profile criterion
        # (factor.minres' bounded L-BFGS-B solves those): stop after 6 iterations there.
        edge = ((psi[act] <= factor.PSI_BOUNDS[0] + 1e-6)
                | (psi[act] >= factor.PSI_BOUNDS[1] - 1e-9)).any(axis=1)
        at_bound[act] = np.where(edge, at_bound[act] + 1, 0)
        done[act[at_bound[act] >= 6]] = True
    e_diag = np.einsum("gia,ga->gi", vectors[:, :, :k - nf] ** 2, values[:, :k - nf])
    ok = (np.abs(e_diag).max(axis=1) < 1e-9) & (values[:, k - nf] > 1e-6)
    ok &= ((psi > factor.PSI_BOUNDS[0] + 1e-6) & (psi < factor.PSI_BOUNDS[1] - 1e-9)).all(axis=1)
    if nf < k:
        ok &= values[:, k - nf] - values[:, k - nf - 1] > 1e-8
    loadings = vectors[:, :, ::-1][:, :, :nf] * np.sqrt(
        np.maximum(values[:, ::-1][:, :nf], 100 * np.finfo(float).eps))[:, None, :]
    loadings = loadings * np.where(loadings.sum(axis=1, keepdims=True) < 0, -1, 1)
    return loadings, ok


def _backtrack(p: np.ndarray, r: np.ndarray, nf: int, step: np.ndarray, f0: np.ndarray):
    """p - step, halved until minres' own criterion (off-diagonal residual SS) does
    not rise: a descent path from 1 - smc, as factor.minres' L-BFGS-B does, instead
    of full Newton steps that can jump to another, worse minimum.

    Returns the trial psi, its decomposition and criterion, and whether it was accepted.
    """
    k = r.shape[1]
    new = np.clip(p - step, *factor.PSI_BOUNDS)
    values, vectors = np.empty((len(p), k)), np.empty((len(p), k, k))
    f_new = np.empty(len(p))
    better = np.zeros(len(p), bool)
    shrink = 1.0
    for _ in range(30):
        s_ = np.flatnonzero(~better)
        if s_.size == 0:
            break
        if shrink < 1:
            new[s_] = np.clip(p[s_] - shrink * step[s_], *factor.PSI_BOUNDS)
        values[s_], vectors[s_] = _decompose(new[s_], r[s_])
        f_new[s_] = _offdiag_ss(r[s_], nf, values[s_], vectors[s_])
        better[s_] = f_new[s_] <= f0[s_] * (1 + 1e-13) + 1e-300
        shrink /= 2
    return new, values, vectors, f_new, better


def _oblimin_criterion(loadings: np.ndarray):
    nf = loadings.shape[2]
    cross = (loadings**2) @ (1 - np.eye(nf))
    return (loadings**2 * cross).sum(axis=(1, 2)) / 4, loadings * cross


def oblimin_many(a: np.ndarray, eps: float = 1e-5, max_iter: int = 1000):
    """:func:`factor.oblimin` (GPFoblq from the identity) of stacked loadings, in lockstep."""
    g, _, nf = a.shape
    t = np.broadcast_to(np.eye(nf), (g, nf, nf)).copy()
    loadings = a @ np.linalg.inv(t).transpose(0, 2, 1)
    f, gq = _oblimin_criterion(loadings)
    grad = -(loadings.transpose(0, 2, 1) @ gq @ np.linalg.inv(t)).transpose(0, 2, 1)
    step = np.ones(g)
    converged = np.zeros(g, bool)
    for _ in range(max_iter + 1):
        gp = grad - t * (t * grad).sum(axis=1, keepdims=True)
        norm2 = (gp**2).sum(axis=(1, 2))
        converged |= np.sqrt(norm2) < eps
        act = np.flatnonzero(~converged)
        if act.size == 0:
            break
        st = step[act] * 2
        ta, gpa, fa, aa = t[act], gp[act], f[act], a[act]
        searching = np.ones(act.size, bool)
        t_new, f_new = ta.copy(), fa.copy()
        l_new, gq_new = loadings[act].copy(), gq[act].copy()
        for _ in range(11):
            s = np.flatnonzero(searching)
            if s.size == 0:
                break
            x = ta[s] - st[s, None, None] * gpa[s]
            tn = x / np.sqrt((x**2).sum(axis=1, keepdims=True))
            ln = aa[s] @ np.linalg.inv(tn).transpose(0, 2, 1)
            fn, gqn = _oblimin_criterion(ln)
            t_new[s], f_new[s], l_new[s], gq_new[s] = tn, fn, ln, gqn
            accept = fa[s] - fn > 0.5 * norm2[act][s] * st[s]
            st[s[~accept]] /= 2
            searching[s[accept]] = False
        step[act] = st
        t[act], f[act], loadings[act], gq[act] = t_new, f_new, l_new, gq_new
        grad[act] = -(l_new.transpose(0, 2, 1) @ gq_new
                      @ np.linalg.inv(t_new)).transpose(0, 2, 1)
    return loadings, t.transpose(0, 2, 1) @ t, converged


def omega_h_many(xs: list[np.ndarray], groups: list[list[list[int]]],
                 rs: list[np.ndarray | None] | None = None) -> list[tuple[float, list[str]]]:
    """:func:`factor.omega_hierarchical` of each matrix, batched by (k, number of groups).

    ``rs`` as in :func:`omega_total_many`.
    """
    out: list = [None] * len(xs)
    buckets = defaultdict(list)
    if rs is None:
        rs = [factor._correlation_or_none(x) for x in xs]
    for i, (x, grp, r) in enumerate(zip(xs, groups, rs)):
        nf = len(grp)
        if r is None or nf < 2 or x.shape[1] < 2 * nf:
            out[i] = (float("nan"), ["omega_h_not_estimable"])
        elif nf == 2:
            out[i] = factor.omega_hierarchical(x, grp)  # psych's two-factor rule
        else:
            buckets[(x.shape[1], nf)].append((i, r))
    for (_, nf), members in buckets.items():
        r = np.stack([m[1] for m in members])
        unrotated, ok = minres_many(r, nf)
        for j in np.flatnonzero(~ok):  # bounded minres (factor.minres), then on in batch
            unrotated[j] = factor.minres(r[j], nf)
        pattern, phi, converged = oblimin_many(unrotated)
        gload, ok_phi = one_factor_uls(phi)
        for j in np.flatnonzero(~ok_phi):
            gload[j] = factor.minres(phi[j], 1).ravel()
        general = (pattern @ gload[..., None])[..., 0]
        omega = general.sum(axis=1) ** 2 / r.sum(axis=(1, 2))
        for j, (i, _) in enumerate(members):
            if np.isfinite(omega[j]):
                out[i] = (float(omega[j]), [] if converged[j] else ["rotation_not_converged"])
            else:
                out[i] = factor.omega_hierarchical(xs[i], groups[i])
    return out


def level_groups(levels) -> list[tuple[tuple, np.ndarray]]:
    """((cohort, wave), row positions) of ``levels`` as ``groupby(["cohort", "wave"])``
    iterates them: sorted keys, rows in their original order."""
    grouped = levels.groupby(["cohort", "wave"], sort=True)
    codes = grouped.ngroup().to_numpy()
    keys = list(grouped.size().index)
    kept = np.flatnonzero(codes >= 0)
    order = kept[np.argsort(codes[kept], kind="stable")]
    bounds = np.cumsum(np.bincount(codes[kept], minlength=len(keys)))[:-1]
    return list(zip(keys, np.split(order, bounds)))
