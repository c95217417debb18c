"""An exact epsilon-SVR dual solver: LIBSVM's SMO, compiled with numba, for slam's ``solver = "smo"``.

It solves the same problem as LIBSVM's epsilon-SVR on a precomputed kernel matrix ``K`` (l, l)::

    min_b  1/2 b^T K b - y^T b + epsilon |b|_1     s.t.  -C <= b_i <= C,  sum(b) = 0

with LIBSVM's algorithm: the 2l-variable form (alpha, alpha*), the second-order working-set
selection of Fan, Chen & Lin (2005), the same two-variable update and clipping, LIBSVM's shrinking
heuristic, the same stopping rule (maximal violating pair below ``tol``) and the same intercept
(``-rho``: the mean over the free variables, else the midpoint of the bounds). Where it differs,
the problem solved and the stopping rule do not change:

* the gradient is kept per star as ``f = K b`` (l values, not 2l) and each star offers the
  better of its two variables to the working-set selection (so the iterates, and the iteration
  counts, are close to but not LIBSVM's: ties and shrinking fall differently);
* the kernel is a dense double-precision matrix (LIBSVM caches single-precision rows); shrunk
  stars are removed physically: the active stars' kernel block and gradients are packed into
  contiguous arrays (``packed=True``), so every iteration costs two unit-stride scans and one
  gradient update over the active stars only, with no cache look-ups. ``packed=False`` runs a plainer
  loop over LIBSVM's 2l variables (kept as a cross-check);
* any feasible ``beta0`` can start the iterations (a warm start). Measured on slam's problems
  (case a), warm starts from the neighbouring pixel, from a smaller C or from another fold do
  *not* reduce the iterations: most coefficients sit at +-C, set by each star's own noise, which
  neighbouring pixels and grid points do not share. slam therefore starts every fit from 0.

At LIBSVM's tolerance (1e-3) both stop near, not at, the optimum, at slightly different points;
at a tight tolerance both reach the same optimum (tests/test_svr_solver.py).

numba is an optional dependency (``pip install slamfw[fast]``); :data:`HAVE_NUMBA` says whether it
is importable, and slam falls back to LIBSVM when it is not.
"""
from __future__ import annotations

import warnings

import numpy as np

try:  # optional
    import numba
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False

TAU = 1e-12
INF = np.inf
NEG = -1e300   # "no candidate" in the branch-free selection (finite, so max() reductions vectorise)


def _pair_update_py(yi, yj, ai, aj, Gi, Gj, qii, qjj, kij, C):  # pragma: no cover - compiled below
    """LIBSVM's two-variable update of the working pair (alpha_i, alpha_j) with labels yi, yj,
    gradients Gi, Gj and kernel entries K_ii, K_jj, K_ij, clipped to the box [0, C]: the new
    (alpha_i, alpha_j). Shared by both SMO loops."""
    if yi != yj:
        quad = qii + qjj + 2.0 * (yi * yj * kij)
        if quad <= 0.0:
            quad = TAU
        delta = (-Gi - Gj) / quad
        diff = ai - aj
        ai += delta
        aj += delta
        if diff > 0.0:
            if aj < 0.0:
                aj = 0.0
                ai = diff
        else:
            if ai < 0.0:
                ai = 0.0
                aj = -diff
        if diff > 0.0:  # C_i - C_j == 0
            if ai > C:
                ai = C
                aj = C - diff
        else:
            if aj > C:
                aj = C
                ai = C + diff
    else:
        quad = qii + qjj - 2.0 * (yi * yj * kij)
        if quad <= 0.0:
            quad = TAU
        delta = (Gi - Gj) / quad
        s = ai + aj
        ai -= delta
        aj += delta
        if s > C:
            if ai > C:
                ai = C
                aj = s - C
        else:
            if aj < 0.0:
                aj = 0.0
                ai = s
        if s > C:
            if aj > C:
                aj = C
                ai = s - C
        else:
            if ai < 0.0:
                ai = 0.0
                aj = s
    return ai, aj


def _running_max_py(s, na, start):  # pragma: no cover - compiled below
    """max(start, max(s[:na])) with four independent running maxima: max is exact, so the value is
    that of one running max, without its chain of dependent comparisons."""
    m0 = start
    m1 = start
    m2 = start
    m3 = start
    n4 = na - na % 4
    for k in range(0, n4, 4):
        m0 = max(m0, s[k])
        m1 = max(m1, s[k + 1])
        m2 = max(m2, s[k + 2])
        m3 = max(m3, s[k + 3])
    for k in range(n4, na):
        m0 = max(m0, s[k])
    return max(max(m0, m1), max(m2, m3))


def _last_equal_py(s, na, value):  # pragma: no cover - compiled below
    """The last k < na with s[k] == value, or -1: eight entries per branch, then one by one."""
    k = na - 1
    while k >= 7:
        if ((s[k] == value) | (s[k - 1] == value) | (s[k - 2] == value) | (s[k - 3] == value)
                | (s[k - 4] == value) | (s[k - 5] == value) | (s[k - 6] == value) | (s[k - 7] == value)):
            break
        k -= 8
    while k >= 0:
        if s[k] == value:
            return k
        k -= 1
    return -1


def _smo_py(K, y, C, eps, tol, beta, f, max_iter, shrinking):  # pragma: no cover - compiled below
    """SMO on the 2l-variable SVR dual, in place on beta (l,) and f = K @ beta (l,).

    Variable t < l is alpha_t (label +1, gradient G_t = eps - y_t + f_t); t >= l is alpha*_{t-l}
    (label -1, G_t = eps + y_r - f_r). ``f`` is kept exact for every star, so shrinking only
    narrows the working-set search and unshrinking needs no gradient reconstruction.
    Returns (n_iter, converged)."""
    n = y.shape[0]
    ll = 2 * n
    alpha = np.empty(ll)
    for r in range(n):
        alpha[r] = beta[r] if beta[r] > 0.0 else 0.0
        alpha[r + n] = -beta[r] if beta[r] < 0.0 else 0.0
    diag = np.empty(n)
    for r in range(n):
        diag[r] = K[r, r]
    ym = y - eps          # G_t = f_t - ym_t        (t < l)
    yp = y + eps          # G_t = yp_r - f_r        (t >= l)
    active = np.arange(ll)
    na = ll
    rows = np.arange(n)      # stars with an active variable: f is kept exact on these only
    nr = n
    mark = np.zeros(n, dtype=np.bool_)
    unshrunk = False
    counter = min(ll, 1000) + 1
    it = 0
    converged = False
    while it < max_iter:
        counter -= 1
        if counter == 0:
            counter = min(ll, 1000)
            if shrinking:
                # LIBSVM's do_shrinking
                gm1 = -INF
                gm2 = -INF
                for k in range(na):
                    t = active[k]
                    if t < n:
                        g = f[t] - ym[t]
                        if alpha[t] < C:
                            gm1 = max(gm1, -g)
                        if alpha[t] > 0.0:
                            gm2 = max(gm2, g)
                    else:
                        g = yp[t - n] - f[t - n]
                        if alpha[t] < C:
                            gm2 = max(gm2, -g)
                        if alpha[t] > 0.0:
                            gm1 = max(gm1, g)
                if not unshrunk and gm1 + gm2 <= tol * 10.0:
                    unshrunk = True
                    if nr < n:
                        _reconstruct(K, beta, f, rows, nr, mark)
                    for k in range(ll):
                        active[k] = k
                    na = ll
                k = 0
                while k < na:
                    t = active[k]
                    a = alpha[t]
                    shrink = False
                    if t < n:
                        g = f[t] - ym[t]
                        if a >= C:
                            shrink = -g > gm1
                        elif a <= 0.0:
                            shrink = g > gm2
                    else:
                        g = yp[t - n] - f[t - n]
                        if a >= C:
                            shrink = -g > gm2
                        elif a <= 0.0:
                            shrink = g > gm1
                    if shrink:
                        na -= 1
                        active[k] = active[na]
                        active[na] = t
                    else:
                        k += 1
                # the stars left active
                for r in range(n):
                    mark[r] = False
                for k in range(na):
                    t = active[k]
                    mark[t if t < n else t - n] = True
                nr = 0
                for r in range(n):
                    if mark[r]:
                        rows[nr] = r
                        nr += 1
        # ---- working set selection (LIBSVM WSS 2) over the active variables
        i = -1
        j = -1
        gap = 0.0
        for attempt in range(2):
            gmax = -INF
            i = -1
            for k in range(na):
                t = active[k]
                if t < n:
                    if alpha[t] < C:
                        v = ym[t] - f[t]            # -G_t
                        if v >= gmax:
                            gmax = v
                            i = t
                else:
                    if alpha[t] > 0.0:
                        v = yp[t - n] - f[t - n]    # G_t
                        if v >= gmax:
                            gmax = v
                            i = t
            gmax2 = -INF
            j = -1
            obj_diff_min = INF
            if i >= 0:
                ri = i if i < n else i - n
                Ki = K[ri]
                kii = Ki[ri]
                for k in range(na):
                    t = active[k]
                    if t < n:
                        if alpha[t] > 0.0:
                            g = f[t] - ym[t]
                            if g >= gmax2:
                                gmax2 = g
                            grad_diff = gmax + g
                            if grad_diff > 0.0:
                                quad = kii + diag[t] - 2.0 * Ki[t]
                                if quad <= 0.0:
                                    quad = TAU
                                od = -(grad_diff * grad_diff) / quad
                                if od <= obj_diff_min:
                                    j = t
                                    obj_diff_min = od
                    else:
                        if alpha[t] < C:
                            r = t - n
                            g = yp[r] - f[r]
                            if -g >= gmax2:
                                gmax2 = -g
                            grad_diff = gmax - g
                            if grad_diff > 0.0:
                                quad = kii + diag[r] - 2.0 * Ki[r]
                                if quad <= 0.0:
                                    quad = TAU
                                od = -(grad_diff * grad_diff) / quad
                                if od <= obj_diff_min:
                                    j = t
                                    obj_diff_min = od
            gap = gmax + gmax2
            if gap < tol or j == -1:
                if na < ll:
                    # optimal on the active set: unshrink and look again (LIBSVM does the same)
                    if nr < n:
                        _reconstruct(K, beta, f, rows, nr, mark)
                        for r in range(n):
                            rows[r] = r
                        nr = n
                    for k in range(ll):
                        active[k] = k
                    na = ll
                    counter = 1
                    continue
                converged = True
            break
        if converged or j == -1 or gap < tol:
            converged = True
            break
        it += 1
        ri = i if i < n else i - n
        rj = j if j < n else j - n
        yi = 1.0 if i < n else -1.0
        yj = 1.0 if j < n else -1.0
        Gi = (f[ri] - ym[ri]) if i < n else (yp[ri] - f[ri])
        Gj = (f[rj] - ym[rj]) if j < n else (yp[rj] - f[rj])
        kij = K[ri, rj]
        qii = K[ri, ri]
        qjj = K[rj, rj]
        old_ai = alpha[i]
        old_aj = alpha[j]
        ai = old_ai
        aj = old_aj
        ai, aj = _pair_update(yi, yj, ai, aj, Gi, Gj, qii, qjj, kij, C)
        alpha[i] = ai
        alpha[j] = aj
        dbi = yi * (ai - old_ai)
        dbj = yj * (aj - old_aj)
        beta[ri] += dbi
        beta[rj] += dbj
        if dbi != 0.0 or dbj != 0.0:
            Ki = K[ri]
            Kj = K[rj]
            if nr == n:
                for r in range(n):
                    f[r] += dbi * Ki[r] + dbj * Kj[r]
            else:
                for k in range(nr):
                    r = rows[k]
                    f[r] += dbi * Ki[r] + dbj * Kj[r]
    if nr < n:
        _reconstruct(K, beta, f, rows, nr, mark)
    return it, converged


def _reconstruct_py(K, beta, f, rows, nr, mark):  # pragma: no cover - compiled below
    """f = K @ beta on the stars outside rows[:nr] (LIBSVM's reconstruct_gradient)."""
    n = beta.shape[0]
    for r in range(n):
        mark[r] = True
    for k in range(nr):
        mark[rows[k]] = False
    for r in range(n):
        if mark[r]:
            acc = 0.0
            Kr = K[r]
            for s in range(n):
                if beta[s] != 0.0:
                    acc += Kr[s] * beta[s]
            f[r] = acc


def _rho_py(K, y, C, eps, beta, f):  # pragma: no cover - compiled below
    """LIBSVM's calculate_rho at beta (f = K @ beta)."""
    n = y.shape[0]
    ll = 2 * n
    ub = INF
    lb = -INF
    nr_free = 0
    sum_free = 0.0
    for t in range(ll):
        if t < n:
            yg = eps - y[t] + f[t]          # y_t G_t with y_t = +1
            a = beta[t] if beta[t] > 0.0 else 0.0
            if a >= C:
                lb = max(lb, yg)
            elif a <= 0.0:
                ub = min(ub, yg)
            else:
                nr_free += 1
                sum_free += yg
        else:
            r = t - n
            yg = -(eps + y[r] - f[r])       # y_t G_t with y_t = -1
            a = -beta[r] if beta[r] < 0.0 else 0.0
            if a >= C:
                ub = min(ub, yg)
            elif a <= 0.0:
                lb = max(lb, yg)
            else:
                nr_free += 1
                sum_free += yg
    rho = sum_free / nr_free if nr_free > 0 else (ub + lb) / 2.0
    return rho


def _compact_py(K, act, na, Kc):  # pragma: no cover - compiled below
    """Kc[:na, :na] = K[act[:na]][:, act[:na]]."""
    for a in range(na):
        ra = act[a]
        for b in range(na):
            Kc[a, b] = K[ra, act[b]]


def _smo_star_py(K, y, C, eps, tol, beta, f, max_iter, shrinking):  # pragma: no cover - compiled below
    """LIBSVM's SMO (WSS 2, shrinking) written per star, in place on beta (l,) and f = K @ beta (l,).

    The 2l LIBSVM variables are alpha_r = max(beta_r, 0) (label +1, -y G = v_r) and
    alpha*_r = max(-beta_r, 0) (label -1, -y G = v_r + 2 eps), with v = y - eps - f. Each star's
    best candidate for the working set is the better of its two variables, as LIBSVM's selection
    would rank them (the iterates are close to, not the same as, LIBSVM's). Shrunk stars are
    removed physically: the active stars' kernel
    block, coefficients and gradients are packed into contiguous arrays, so the two scans and the
    gradient update per iteration are unit-stride loops over the active stars only.
    Returns (n_iter, converged)."""
    n = y.shape[0]
    two_eps = 2.0 * eps
    ym = y - eps
    act = np.arange(n)
    na = n
    Kc = K                         # the active block (K itself while nothing is shrunk)
    Kbuf = np.empty((0, 0))
    bc = beta.copy()
    vc = ym - f                    # v = y - eps - f on the active stars
    dc = np.empty(n)
    for r in range(n):
        dc[r] = K[r, r]
    gone = np.empty(n, dtype=np.bool_)   # the active stars a shrinking pass drops
    s1 = np.empty(n)   # scratch for the working-set selection
    s2 = np.empty(n)
    s3 = np.empty(n)
    unshrunk = False
    counter = min(2 * n, 1000) + 1
    it = 0
    converged = False
    while it < max_iter:
        counter -= 1
        if counter == 0:
            counter = min(2 * n, 1000)
            if shrinking:
                gm1 = -INF
                gm2 = -INF
                for k in range(na):
                    v = vc[k]
                    b = bc[k]
                    if b < C:
                        u = v + two_eps if b < 0.0 else v
                        if u > gm1:
                            gm1 = u
                    if b > -C:
                        lo = v + two_eps if b <= 0.0 else v
                        if -lo > gm2:
                            gm2 = -lo
                if not unshrunk and gm1 + gm2 <= tol * 10.0:
                    unshrunk = True
                    if na < n:
                        for k in range(na):
                            beta[act[k]] = bc[k]
                        _full_gradient(K, beta, f)
                        for r in range(n):
                            act[r] = r
                            bc[r] = beta[r]
                            vc[r] = ym[r] - f[r]
                            dc[r] = K[r, r]
                        na = n
                        Kc = K
                        continue  # recompute the bounds on the whole set at the next check
                # stars whose both variables LIBSVM would shrink
                keep = 0
                for k in range(na):
                    v = vc[k]
                    b = bc[k]
                    if b >= C:
                        gone[k] = v > gm1
                    elif b <= -C:
                        gone[k] = -(v + two_eps) > gm2
                    elif b == 0.0:
                        gone[k] = (-v > gm2) and (v + two_eps > gm1)
                    else:
                        gone[k] = False
                    if not gone[k]:
                        keep += 1
                if keep < na and (na - keep) * 8 >= na:   # pack when at least 1/8 goes
                    if Kbuf.shape[0] < na:
                        Kbuf = np.empty((n, n))
                    # write the shrunk stars back, then pack the kept ones in place
                    newact = np.empty(keep, dtype=np.int64)
                    pos = np.empty(keep, dtype=np.int64)
                    q = 0
                    for k in range(na):
                        r = act[k]
                        beta[r] = bc[k]
                        if not gone[k]:
                            newact[q] = r
                            pos[q] = k
                            q += 1
                    for q in range(keep):
                        k = pos[q]
                        bc[q] = bc[k]
                        vc[q] = vc[k]
                        dc[q] = dc[k]
                        act[q] = newact[q]
                    na = keep
                    _compact(K, act, na, Kbuf)
                    Kc = Kbuf
        # ---- working set selection (LIBSVM WSS 2); after an unshrink, once more on every star
        ik = -1
        jk = -1
        gap = 0.0
        for attempt in range(2):
            # branch-free passes over the active stars into scratch arrays, then the reductions
            # (1.3-1.5x faster per iteration than one branchy pass, measured A/B on case (a)
            # pixels, with the same iteration counts); ties go to the last star, as LIBSVM's
            # ``>=`` comparisons give them. j maximises gd^2 / quad by division (the plain loop's
            # way), so rounding-level ties may fall otherwise than by cross-multiplication
            for k in range(na):
                b = bc[k]
                u = vc[k] + (two_eps if b < 0.0 else 0.0)      # -y G of the star's I_up variable
                s1[k] = u if b < C else NEG
            gmax = _running_max(s1, na, NEG)
            ik = _last_equal(s1, na, gmax) if gmax > NEG else -1
            gmax2 = NEG
            jk = -1
            if ik >= 0:
                Ki = Kc[ik]
                kii = dc[ik]
                for k in range(na):
                    b = bc[k]
                    lo = vc[k] + (two_eps if b <= 0.0 else 0.0)  # -y G of the star's I_low variable
                    valid = b > -C
                    s2[k] = -lo if valid else NEG
                    gd = gmax - lo
                    quad = kii + dc[k] - 2.0 * Ki[k]
                    quad = quad if quad > 0.0 else TAU
                    # the chosen j maximises gd^2 / quad (LIBSVM: minimises -gd^2 / quad)
                    s3[k] = gd * gd / quad if (valid and gd > 0.0) else -1.0
                gmax2 = _running_max(s2, na, NEG)
                best = _running_max(s3, na, -1.0)
                if best >= 0.0:
                    jk = _last_equal(s3, na, best)
            gap = gmax + gmax2
            if (gap < tol or jk == -1) and na < n:
                for k in range(na):
                    beta[act[k]] = bc[k]
                _full_gradient(K, beta, f)
                for r in range(n):
                    act[r] = r
                    bc[r] = beta[r]
                    vc[r] = ym[r] - f[r]
                    dc[r] = K[r, r]
                na = n
                Kc = K
                counter = 1
                continue
            break
        if gap < tol or jk == -1:
            converged = True
            break
        it += 1
        # the LIBSVM variables chosen: i from I_up, j from I_low
        bi = bc[ik]
        bj = bc[jk]
        i_plus = bi >= 0.0            # alpha_r (label +1) else alpha*_r (label -1)
        j_plus = bj > 0.0
        yi = 1.0 if i_plus else -1.0
        yj = 1.0 if j_plus else -1.0
        vi = vc[ik]
        vj = vc[jk]
        Gi = -vi if i_plus else vi + two_eps
        Gj = -vj if j_plus else vj + two_eps
        old_ai = bi if i_plus else -bi
        old_aj = bj if j_plus else -bj
        if old_ai < 0.0:
            old_ai = 0.0
        if old_aj < 0.0:
            old_aj = 0.0
        ai = old_ai
        aj = old_aj
        kij = Kc[ik, jk]
        qii = dc[ik]
        qjj = dc[jk]
        ai, aj = _pair_update(yi, yj, ai, aj, Gi, Gj, qii, qjj, kij, C)
        dbi = yi * (ai - old_ai)
        dbj = yj * (aj - old_aj)
        bc[ik] = bi + dbi
        bc[jk] = bj + dbj
        if dbi != 0.0 or dbj != 0.0:
            Ki = Kc[ik]
            Kj = Kc[jk]
            for k in range(na):
                vc[k] -= dbi * Ki[k] + dbj * Kj[k]
    for k in range(na):
        beta[act[k]] = bc[k]
    _full_gradient(K, beta, f)
    return it, converged


def _full_gradient_py(K, beta, f):  # pragma: no cover - compiled below
    """f = K @ beta over the support (beta != 0)."""
    n = beta.shape[0]
    sv = np.empty(n, dtype=np.int64)
    ns = 0
    for s in range(n):
        if beta[s] != 0.0:
            sv[ns] = s
            ns += 1
    for r in range(n):
        Kr = K[r]
        acc = 0.0
        for q in range(ns):
            s = sv[q]
            acc += Kr[s] * beta[s]
        f[r] = acc


def _submatrix_py(K, rows, cols, out):  # pragma: no cover - compiled below
    """K[rows][:, cols] into ``out`` (C-contiguous, (len(rows), len(cols)))."""
    for i in range(rows.shape[0]):
        Kr = K[rows[i]]
        for j in range(cols.shape[0]):
            out[i, j] = Kr[cols[j]]
    return out


_pair_update = numba.njit(cache=True, nogil=True, inline="always")(_pair_update_py) if HAVE_NUMBA else None
_running_max = numba.njit(cache=True, nogil=True, inline="always")(_running_max_py) if HAVE_NUMBA else None
_last_equal = numba.njit(cache=True, nogil=True, inline="always")(_last_equal_py) if HAVE_NUMBA else None
_reconstruct = numba.njit(cache=True, nogil=True)(_reconstruct_py) if HAVE_NUMBA else None
_smo = numba.njit(cache=True, nogil=True)(_smo_py) if HAVE_NUMBA else None
_full_gradient = numba.njit(cache=True, nogil=True)(_full_gradient_py) if HAVE_NUMBA else None
_compact = numba.njit(cache=True, nogil=True)(_compact_py) if HAVE_NUMBA else None
_smo_star = numba.njit(cache=True, nogil=True)(_smo_star_py) if HAVE_NUMBA else None
_rho = numba.njit(cache=True, nogil=True)(_rho_py) if HAVE_NUMBA else None
_submatrix_jit = numba.njit(cache=True, nogil=True)(_submatrix_py) if HAVE_NUMBA else None


def submatrix(K: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``K[np.ix_(rows, cols)]`` (len(rows), len(cols)) for a 2-D float64 K and 1-D integer index
    arrays inside K's shape: the kernel block of a pixel's training stars, in a compiled loop (without
    numba by two ``take`` calls, about twice as fast as the fancy indexing).

    ``out``: a C-contiguous float64 array of that shape to write the block into (returned), e.g. a
    buffer that serves block after block: a new array of the size of a kernel block (hundreds of MB
    at thousands of stars) is new pages from the system each time, and their first writes cost
    about twice the copy itself (0.12-0.14 s against 0.04 s for a 4800 x 4800 block)."""
    K = np.ascontiguousarray(K, dtype=np.float64)
    index = []
    for name, idx, size in (("rows", rows, K.shape[0]), ("cols", cols, K.shape[1])):
        idx = np.asarray(idx)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or (idx.size and (idx.min() < 0 or idx.max() >= size)):
            raise ValueError(f"submatrix: {name} must be a 1-D array of integers in [0, {size}), got "
                             f"{idx.dtype} {idx.shape}")
        index.append(idx.astype(np.int64, copy=False))
    shape = (index[0].size, index[1].size)
    if out is None:
        out = np.empty(shape)
    elif out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"submatrix: out must be a C-contiguous float64 array of shape {shape}, got "
                         f"{out.dtype} {out.shape}")
    if not HAVE_NUMBA:
        return np.take(K.take(index[0], axis=0), index[1], axis=1, out=out)
    return _submatrix_jit(K, *index, out)


def dual_objective(K: np.ndarray, y: np.ndarray, beta: np.ndarray, epsilon: float) -> float:
    """1/2 b^T K b - y^T b + epsilon |b|_1."""
    return float(0.5 * beta @ K @ beta - y @ beta + epsilon * np.abs(beta).sum())


def solve_svr(K: np.ndarray, y: np.ndarray, C: float, epsilon: float, tol: float = 1e-3,
              beta0: np.ndarray | None = None, max_iter: int = -1,
              shrinking: bool = True, packed: bool = True) -> tuple[np.ndarray, float, int]:
    """Solve the epsilon-SVR dual on kernel K (l, l) for targets y (l,).

    Returns ``(beta, intercept, n_iter)``: the dual coefficients (LIBSVM's ``alpha - alpha*``, 0 off
    the support vectors), the intercept (LIBSVM's ``-rho``) and the number of SMO iterations, so
    that predictions are ``K(test, train) @ beta + intercept``. ``beta0``: a feasible start
    (clipped to [-C, C] and made to sum to 0 if it is not quite). ``max_iter`` -1: LIBSVM's
    cap (max(10^7, 100 l)); reaching the cap warns, as LIBSVM does. ``shrinking``: LIBSVM's
    heuristic (True, as scikit-learn's default). ``packed``: the per-star loop on packed active
    blocks (True, faster) or the plain loop over the 2l variables (False).
    """
    if not HAVE_NUMBA:
        raise ImportError("the 'smo' SVR solver needs numba (pip install numba)")
    K = np.ascontiguousarray(K, dtype=np.float64)
    if not K.flags.writeable:   # one array type for the packed kernel blocks
        K = K.copy()
    y = np.ascontiguousarray(y, dtype=np.float64)
    n = y.shape[0]
    beta = np.zeros(n) if beta0 is None else _feasible(np.asarray(beta0, dtype=np.float64), C)
    f = K @ beta if beta.any() else np.zeros(n)
    cap = max(10_000_000, 100 * n) if max_iter is None or max_iter < 0 else int(max_iter)
    smo = _smo_star if packed else _smo
    it, converged = smo(K, y, float(C), float(epsilon), float(tol), beta, f, cap, shrinking)
    if not converged:
        warnings.warn(f"smo: stopped at max_iter={cap} before reaching tol={tol} (as LIBSVM would warn)",
                      RuntimeWarning, stacklevel=2)
    rho = _rho(K, y, float(C), float(epsilon), beta, f)
    return beta, -rho, it


def _feasible(beta: np.ndarray, C: float) -> np.ndarray:
    """A copy of beta inside the box with zero sum (a no-op for a feasible beta)."""
    beta = np.clip(beta, -C, C)
    s = beta.sum()
    if abs(s) > 1e-12 * max(C, 1.0):
        # remove the excess from the coefficients that have room, proportionally to the room
        room = (C - beta) if s < 0 else (C + beta)
        total = room.sum()
        if total <= abs(s):
            return np.zeros_like(beta)
        beta = beta - s * room / total
        beta = np.clip(beta, -C, C)
    return beta
