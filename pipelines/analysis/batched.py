"""Every reliability figure of many scales at once (the table of a national program).

:func:`scale_reliability` (one respondents x items matrix) stays the reference:
it follows R psych step by step and is tested against psych's printed values.
:func:`reliability_many` returns exactly its dicts for a list of matrices but
computes them together:

* groups with the same number of complete rows n and items k are stacked in an
  (groups x n x k) array, so alpha, std alpha, G6, KR-20/21, SEM, Feldt's CI,
  the flags and the moments are a few numpy reductions per (n, k) bucket;
* the bootstrap: :func:`~pipelines.analysis.reliability.resampling_weights`
  depends only on (n, B, seed), so every group with n complete rows (whatever
  its k) uses the same weights, drawn once per n (in blocks of 64 resamples,
  counted a few resamples at a time so the counts stay in cache: the same
  stream, bit-identical weights) and applied to all those groups in one
  matrix product per block and chunk of groups (sized so the sums stay in
  cache; the items' squared sums by einsum, without a temporary). The draws,
  hence the percentile bounds, are the reference's (equal up to floating-point
  summation order). Everything runs on one BLAS thread: the products have
  n ~ 25 inner rows, and on a busy machine (the pooled rows run beside the
  cohorts) a second thread made them several times slower;
* omega total and omega hierarchical: :func:`minres_many`, Newton on the
  uniquenesses for all groups with k items at once (profile criterion: sum of
  squared eigenvalues beyond ``nf`` of R - diag(psi), analytic gradient and
  Hessian, made positive definite), each step backtracked until minres' own
  criterion (off-diagonal residual SS) does not rise, so the path descends from
  1 - smc as the reference's L-BFGS-B does (full Newton steps used to jump to
  another, worse minimum in ~3% of small groups). Its interior solutions are
  the stationary points psych's minres converges to (psych's gradient is the
  diagonal residual). One eigendecomposition per group and iteration: the
  accepted trial point's serves the next iteration (gradient, Hessian,
  criterion); the Hessian is summed by eigen-blocks in O(nf k^3), not O(k^4);
  the correlation matrices come from the (n, k) stacks of the closed-form
  figures, not one np.corrcoef per group. Then the reference's oblimin (gradient projection, same
  line search) in lockstep over groups and the one-factor step on Phi. A group
  that does not converge or has a uniqueness on a bound (Heywood cases: bounded
  minres is left to the reference) gets the reference's
  :func:`~pipelines.analysis.factor.minres` (analytic gradient, one BLAS
  thread) for that step only: omega total's
  :func:`~pipelines.analysis.factor.omega_total`; for omega_h the unrotated
  loadings (or the one-factor loadings of Phi), the rest stays batched. psych's
  two-factor rule and non-finite results use
  :func:`~pipelines.analysis.factor.omega_hierarchical`.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from pipelines.analysis import factor
from pipelines.analysis.reliability import (
    ALPHA_FLOOR,
    DEFAULT_BOOT,
    DEFAULT_SEED,
    MIN_N,
    MISSING_RULE,
    _alpha_from_moments,
    complete_matrix,
    scale_reliability,
)

BLOCK = 64  # resamples per block of weights (one matrix product per block)
COUNT_CELLS = 1 << 17  # resamples x n counted at once: the bincount target stays in cache
SUM_COLUMNS = 4096  # groups x (k + 3) columns per product: its block of sums stays in cache
NEWTON_TOL = 1e-12


def smc_many(r: np.ndarray) -> np.ndarray:
    """:func:`squared_multiple_correlations` of stacked correlation matrices (g x k x k)."""
    out = np.empty(r.shape[:2])
    if len(r) == 0:
        return out
    good = np.linalg.cond(r) < 1e12
    if good.any():
        out[good] = 1 - 1 / np.diagonal(np.linalg.inv(r[good]), axis1=1, axis2=2)
    if (~good).any():  # singular (two identical items...): least squares, as the reference
        out[~good] = smc_least_squares_many(r[~good])
    return out


def smc_least_squares_many(r: np.ndarray) -> np.ndarray:
    """The singular-R branch of :func:`squared_multiple_correlations`, stacked (g x k x k).

    Each item's R^2 = r_jo pinv(R_oo) r_jo, one batched pinv per item instead of
    one per group and item (knowledge tests in small cohorts are often singular).
    """
    k = r.shape[1]
    smc = np.empty(r.shape[:2])
    for j in range(k):
        others = np.delete(np.arange(k), j)
        r_jo = r[:, others, j]
        inv = np.linalg.pinv(r[:, others][:, :, others])
        smc[:, j] = np.einsum("gi,gij,gj->g", r_jo, inv, r_jo)
    return np.clip(smc, 0, 1)


# ---- bootstrap ---------------------------------------------------------------

def weight_blocks(n: int, n_boot: int, seed: int = DEFAULT_SEED, block: int = BLOCK):
    """The rows of ``resampling_weights(n, n_boot, seed)``, ``block`` at a time.

    Same generator, same draws in the same order: concatenated, the blocks equal
    the reference matrix exactly (tested), without holding n_boot x n floats.
    The draws of a block are counted a few resamples at a time (COUNT_CELLS):
    for n ~ 27,000 one bincount over 64 resamples scatters into 14 MB, several
    times slower than into a cache-sized target.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, min(block, COUNT_CELLS // n))
    offsets = (np.arange(rows, dtype=np.int64) * n)[:, None]
    for start in range(0, n_boot, block):
        m = min(block, n_boot - start)
        drawn = rng.integers(0, n, size=(m, n), dtype=np.int64)
        weights = np.empty((m, n))
        for r in range(0, m, rows):
            part = drawn[r:r + rows]
            part += offsets[:len(part)]
            weights[r:r + len(part)] = np.bincount(part.ravel(), minlength=part.size
                                                   ).reshape(part.shape)
        yield weights


def _moment_columns(xs: np.ndarray) -> list[tuple[slice, np.ndarray, np.ndarray]]:
    """[X | sum_j X^2 | T | T^2] of stacked groups (g x n x k) as n-row matrices.

    One (slice of groups, matrix, variance scale) per chunk of groups of at most
    SUM_COLUMNS columns; the items of all groups come first (contiguous), then
    one column of each moment per group.
    """
    g, n, k = xs.shape
    chunk = max(1, SUM_COLUMNS // (k + 3))
    out = []
    for start in range(0, g, chunk):
        x = xs[start:start + chunk]
        total = x.sum(axis=2)
        flat = np.concatenate([x.transpose(1, 0, 2).reshape(n, -1), (x**2).sum(axis=2).T,
                               total.T, (total**2).T], axis=1)
        scale = 1e-12 * np.maximum(1.0, np.abs(total).max(axis=1) ** 2)
        out.append((slice(start, start + len(x)), flat, scale))
    return out


def bootstrap_alphas_many(parts: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """(groups x n_boot) bootstrap alphas of each stack of groups (groups x n x k).

    All stacks share n, hence the reference's weights, drawn once; each block
    of weights multiplies every group's [X, sum_j X^2, T, T^2] (a chunk of
    groups at a time, so the sums stay in cache).
    """
    n = parts[0].shape[1]
    chunks = [_moment_columns(xs) for xs in parts]
    outs = [np.empty((n_boot, len(xs))) for xs in parts]
    start = 0
    for weights in weight_blocks(n, n_boot, seed):
        m = len(weights)
        for xs, parts_chunks, out in zip(parts, chunks, outs):
            k = xs.shape[2]
            for groups, flat, scale in parts_chunks:
                g = flat.shape[1] // (k + 3)
                sums = weights @ flat
                first = sums[:, :g * k].reshape(m, g, k)
                squares = np.einsum("mgk,mgk->mg", first, first)  # no m x g x k temporary
                second, total, total2 = (sums[:, g * (k + i):g * (k + i + 1)] for i in range(3))
                item_var = (second - squares / n) / (n - 1)
                total_var = (total2 - total**2 / n) / (n - 1)
                total_var = np.where(total_var > scale, total_var, 0.0)
                out[start:start + m, groups] = _alpha_from_moments(item_var, total_var, k)
        start += m
    return [out.T for out in outs]


def _percentile_ci(alphas: np.ndarray, n_boot: int, level: float) -> tuple[np.ndarray, ...]:
    tail = 100 * (1 - level) / 2
    low, high = np.full(len(alphas), np.nan), np.full(len(alphas), np.nan)
    finite = np.isfinite(alphas)
    whole = finite.all(axis=1)
    if whole.any():
        low[whole], high[whole] = np.percentile(alphas[whole], [tail, 100 - tail], axis=1)
    for i in np.flatnonzero(~whole):  # as the reference: drop non-finite resamples
        kept = alphas[i][finite[i]]
        if kept.size >= 0.9 * n_boot:
            low[i], high[i] = np.percentile(kept, [tail, 100 - tail])
    return low, high


# ---- one-factor minres (omega total) ------------------------------------------

def one_factor_uls(r: np.ndarray, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Loadings minimising the squared off-diagonal residuals, for stacked R (g x k x k).

    Newton's method from the first principal-axis step (diagonal = smc), step
    halved while the criterion rises. Returns (loadings, ok): ``ok`` is False
    where it did not converge, a uniqueness is at or below psych's bound 0.005,
    or the loadings are not the top eigenvector of the reduced matrix (not the
    solution minres finds); those groups need the reference.
    """
    g, k, _ = r.shape
    off = r.copy()
    off[:, np.arange(k), np.arange(k)] = 0.0
    smc = smc_many(r)
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
    the minimum of the reference's off-diagonal criterion. Returns (loadings, ok).

    One eigendecomposition per group and iteration: that of the accepted trial
    point is kept for the next iteration's gradient, Hessian and criterion
    (more only while a step is halved).
    """
    g, k, _ = r.shape
    psi = np.clip(1 - smc_many(r), *factor.PSI_BOUNDS)
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
        # (the reference's bounded L-BFGS-B decides those): stop after 6 iterations there.
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
    not rise: a descent path from 1 - smc, as the reference's L-BFGS-B, instead
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
        for j in np.flatnonzero(~ok):  # the reference's bounded minres, then on in batch
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


# ---- every figure ---------------------------------------------------------------

def _stack_stats(xs: np.ndarray, level: float) -> dict[str, np.ndarray]:
    """Closed-form figures of stacked groups (g x n x k, n >= 2, k >= 2).

    Also each group's item correlations for the factor models ("corr"), so the
    omegas do not compute them again one group at a time.
    """
    g, n, k = xs.shape
    total = xs.sum(axis=2)
    item_var = xs.var(axis=1, ddof=1)
    total_var = total.var(axis=1, ddof=1)
    alpha = _alpha_from_moments(item_var.sum(axis=1), total_var, k)
    sd = xs.std(axis=1, ddof=1)
    constant = (sd == 0).any(axis=1)
    centred = xs - xs.mean(axis=1, keepdims=True)
    cov = centred.transpose(0, 2, 1) @ centred / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / (sd[:, :, None] * sd[:, None, :])
    r[:, np.arange(k), np.arange(k)] = 1.0
    rsum = r.sum(axis=(1, 2))
    usable = ~constant & (rsum > 0)
    std_alpha = np.where(usable, k / (k - 1) * (1 - k / np.where(usable, rsum, 1)), np.nan)
    lambda6 = np.full(g, np.nan)
    lambda6[usable] = 1 - (k - smc_many(r[usable]).sum(axis=1)) / rsum[usable]
    dich = ((xs == 0) | (xs == 1)).all(axis=(1, 2))
    p = xs.mean(axis=1)
    pop_var = total.var(axis=1, ddof=0)
    kr20 = np.where(dich, _alpha_from_moments((p * (1 - p)).sum(axis=1), pop_var, k), np.nan)
    mean = total.mean(axis=1)
    kr21 = np.where(dich, _alpha_from_moments(mean * (k - mean) / k, pop_var, k), np.nan)
    sd_total = total.std(axis=1, ddof=1)
    valid = np.isfinite(alpha) & (alpha >= 0) & (alpha <= 1)
    sem = np.where(valid, np.round(sd_total * np.sqrt(np.where(valid, 1 - alpha, 0)), 12), np.nan)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    tail = (1 - level) / 2
    upper, lower = stats.f.ppf(1 - tail, df1, df2), stats.f.ppf(tail, df1, df2)
    finite = np.isfinite(alpha)
    low = np.where(finite, 1 - (1 - alpha) * upper, np.nan)
    high = np.where(finite, 1 - (1 - alpha) * lower, np.nan)
    avg_cov = (cov.sum(axis=(1, 2)) - np.trace(cov, axis1=1, axis2=2)) / (k * (k - 1))
    # The flag's sign is decided by rounding where the average covariance is ~0
    # (e.g. exactly 0 in exact arithmetic): there, the reference's own computation.
    edge = np.abs(avg_cov) <= 1e-12 * np.maximum(1.0, np.abs(cov).max(axis=(1, 2)))
    for i in np.flatnonzero(edge):
        c = np.cov(xs[i], rowvar=False)
        avg_cov[i] = (c.sum() - np.trace(c)) / (k * (k - 1))
    # The factor models' correlations (omega): as np.corrcoef, which clips to [-1, 1];
    # None where factor._correlation_or_none gives None (n <= k, k < 3, a constant item).
    estimable = ~constant & (n > k) & (k >= 3)
    corr = [rj if e else None for rj, e in zip(np.clip(r, -1, 1), estimable)]
    return {"alpha": alpha, "low": low, "high": high, "std_alpha": std_alpha,
            "lambda6": lambda6, "kr20": kr20, "kr21": kr21, "sem": sem, "mean_total": mean,
            "sd_total": sd_total, "constant": constant, "negative_cov": avg_cov < 0,
            "zero_total": total_var == 0, "corr": corr}


def _closed_forms_and_bootstrap(xs: dict, buckets: dict, level: float, n_boot: int, seed: int
                                ) -> tuple[dict, dict]:
    """Per matrix: the closed-form figures of :func:`_stack_stats` and the bootstrap bounds."""
    figures, boot = {}, {}
    by_n = defaultdict(list)
    for (n, k), members in buckets.items():
        stacked = np.stack([xs[i] for i in members])
        st = _stack_stats(stacked, level)
        for j, i in enumerate(members):
            figures[i] = {key: value[j] for key, value in st.items()}
        if n >= MIN_N:
            by_n[n].append((members, stacked))
    for parts in by_n.values():
        alphas = bootstrap_alphas_many([stacked for _, stacked in parts], n_boot, seed)
        for (members, _), boot_alphas in zip(parts, alphas):
            low, high = _percentile_ci(boot_alphas, n_boot, level)
            for j, i in enumerate(members):
                boot[i] = (float(low[j]), float(high[j]))
    return figures, boot


def reliability_many(
    matrices: list[np.ndarray], groups: list[list[list[int]] | None] | None = None, *,
    level: float = 0.95, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
) -> list[dict]:
    """``[scale_reliability(m, groups=g, ...) for m, g in zip(matrices, groups)]``, batched.

    Same keys and values (up to floating-point summation order; omega to the
    solvers' tolerance, see the module docstring).
    """
    groups = list(groups) if groups is not None else [None] * len(matrices)
    out: list = [None] * len(matrices)
    xs, dropped, skip_h = {}, {}, set()
    buckets = defaultdict(list)
    for i, items in enumerate(matrices):
        frame = np.asarray(items, dtype=float)
        answered = (~np.isnan(frame).all(axis=0) if frame.shape[0]
                    else np.ones(frame.shape[1], bool))
        x = complete_matrix(frame[:, answered])
        n, k = x.shape
        if n < 2 or k < 2:  # degenerate: the reference is quick
            out[i] = scale_reliability(frame, groups=groups[i], level=level, n_boot=n_boot,
                                       seed=seed)
            continue
        xs[i], dropped[i] = x, int((~answered).sum())
        if not answered.all():
            skip_h.add(i)  # as the reference: no omega_h once an item is left out
        buckets[(n, k)].append(i)
    # One BLAS thread: the bootstrap's products have n ~ 25 inner rows and the
    # fallbacks' L-BFGS-B works on 15-vectors, so extra threads only spin (several
    # times slower on a busy machine; the pooled rows run beside the cohorts).
    with threadpool_limits(limits=1, user_api="blas"):
        figures, boot = _closed_forms_and_bootstrap(xs, buckets, level, n_boot, seed)
        order = list(xs)
        wants_h = [i for i in order if groups[i] is not None and i not in skip_h]
        omega_t = dict(zip(order, omega_total_many([xs[i] for i in order],
                                                   [figures[i]["corr"] for i in order])))
        omega_h = dict(zip(wants_h, omega_h_many([xs[i] for i in wants_h],
                                                 [groups[i] for i in wants_h],
                                                 [figures[i]["corr"] for i in wants_h])))
    for i in order:
        x, fig = xs[i], figures[i]
        n, k = x.shape
        alpha = float(fig["alpha"])
        boot_low, boot_high = boot.get(i, (float("nan"), float("nan")))
        flags = []
        if dropped[i]:
            flags.append("item_never_answered")
        if n < k:
            flags.append("n_below_k")
        if n < MIN_N:
            flags.append("n_below_10")
        if fig["constant"]:
            flags.append("constant_item")
        if fig["negative_cov"]:
            flags.append("negative_average_covariance")
        if fig["zero_total"]:
            flags.append("zero_total_variance")
        if np.isfinite(alpha) and alpha < ALPHA_FLOOR:
            flags.append("alpha_below_0.70")
        value_t, omega_flags = omega_t[i]
        omega_flags = list(omega_flags)
        value_h = float("nan")
        if i in omega_h:
            value_h, more = omega_h[i]
            omega_flags += more
        out[i] = {
            "n": n, "k": k, "alpha": alpha,
            "alpha_ci_low": float(fig["low"]), "alpha_ci_high": float(fig["high"]),
            "alpha_ci_method": "feldt",
            "alpha_boot_low": boot_low, "alpha_boot_high": boot_high,
            "n_boot": n_boot if np.isfinite(boot_low) else 0,
            "std_alpha": float(fig["std_alpha"]), "lambda6": float(fig["lambda6"]),
            "kr20": float(fig["kr20"]), "kr21": float(fig["kr21"]),
            "omega_total": value_t, "omega_h": value_h, "sem": float(fig["sem"]),
            "mean_total": float(fig["mean_total"]), "sd_total": float(fig["sd_total"]),
            "missing_rule": MISSING_RULE,
            "flags": ";".join(dict.fromkeys(flags + omega_flags)),
        }
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
