"""The batched solver's MINPACK steps (``lm.steps = "minpack"``): lmder's path, row by row."""
import numpy as np
import pytest
from scipy.optimize import least_squares

import slamfw.stats.minpack_steps as ms
from slamfw import ConfigError, LeastSquaresForm, Prior, registry
from slamfw.stats.batched_lm import batched_lm
from slamfw.stats.minpack_steps import lmpar

from .test_lm import _agree, _line_problem, _LineModel


def _lmder(emu, flux, w, starts, max_nfev=500):
    """scipy's least_squares(method="lm") from each row's start, as the per-star solver calls it."""
    out = []
    for i in range(len(flux)):
        def resid(t, i=i):
            return w[i] * (flux[i] - emu.predict_and_jacobian(t[None])[0][0])

        def jac(t, i=i):
            return -w[i][:, None] * emu.predict_and_jacobian(t[None])[1][0]
        out.append(least_squares(resid, starts[i, 0], jac=jac, method="lm", x_scale="jac", max_nfev=max_nfev))
    return out


def _distance(z, ref_x, jtj):
    """(R,) sqrt(d^T J^T J d), d = z - ref_x: how far apart in formal errors (the covariance is (J^T J)^-1)."""
    d = z - ref_x
    return np.sqrt(np.einsum("bl,blm,bm->b", d, jtj, d))


@pytest.mark.parametrize("seed", [9, 11])
def test_minpack_steps_take_lmders_path(seed, monkeypatch):
    """Without the last-step rule the rows take lmder's steps: the same points to rounding and the
    same number of evaluations, row by row; on seed 11's problem the secant steps end one row in
    another minimum (this test would see a step rule that is not lmder's)."""
    flux, w, starts = _line_problem(seed=seed)
    emu = _LineModel()
    ref = _lmder(emu, flux, w, starts)
    ref_x = np.array([r.x for r in ref])
    monkeypatch.setattr(ms, "LAST_STEP", 0.0)
    res = batched_lm(emu, flux, w, starts, [None] * len(flux), np.zeros(3), np.ones(3), max_nfev=500, steps="minpack")
    assert res["converged"].all() and all(r.status > 0 for r in ref)
    np.testing.assert_array_equal(res["nfev"], [r.nfev for r in ref])
    assert _distance(res["z"], ref_x, res["jtj"]).max() < 1e-9
    np.testing.assert_allclose(res["cost"], [r.cost for r in ref], rtol=1e-12)
    secant = batched_lm(emu, flux, w, starts, [None] * len(flux), np.zeros(3), np.ones(3), max_nfev=500, steps="secant")
    far = _distance(secant["z"], ref_x, res["jtj"]) > 0.05
    assert far.sum() == (1 if seed == 11 else 0)


class _Valley:
    """Two labels and three pixels, ``(t0, t1, kappa t0^2 / 2)``, fitted to ``(0, 0, m)``: at the
    minimum (t = 0) the residual's curvature cancels 0.9 of J^T J along t0 (m kappa = 0.9), so
    Gauss-Newton creeps there, each step 0.9 of the last, its actual reduction 1.9 times the
    predicted one."""
    kappa, m = 0.009, 100.0

    def predict_and_jacobian(self, t):
        model = np.stack([t[:, 0], t[:, 1], 0.5 * self.kappa * t[:, 0] ** 2], axis=1)
        jac = np.zeros((len(t), 3, 2))
        jac[:, 0, 0], jac[:, 1, 1], jac[:, 2, 0] = 1.0, 1.0, self.kappa * t[:, 0]
        return model, jac


def test_the_last_step_rule_leaves_a_creeping_row_to_lmder(monkeypatch):
    """A row whose steps reduce the cost by far more than predicted (a creeping Gauss-Newton) is
    not stopped by the last-step rule: its steps and evaluations are lmder's. Without the rule's
    ratio condition it would stop 0.03-0.04 formal errors short of lmder's point, beyond
    LAST_STEP (lmder's small steps there are not its last)."""
    emu, n = _Valley(), 5
    flux, w = np.tile([0.0, 0.0, _Valley.m], (n, 1)), np.ones((n, 3))
    starts = np.column_stack([np.linspace(0.5, 1.5, n), np.linspace(-1.0, 1.0, n)])[:, None, :]
    ref = _lmder(emu, flux, w, starts)
    ref_x = np.array([r.x for r in ref])
    res = batched_lm(emu, flux, w, starts, [None] * n, np.zeros(2), np.ones(2), max_nfev=500, steps="minpack")
    np.testing.assert_array_equal(res["nfev"], [r.nfev for r in ref])
    assert _distance(res["z"], ref_x, res["jtj"]).max() < 1e-9
    monkeypatch.setattr(ms, "LAST_RATIO", np.inf)
    early = batched_lm(emu, flux, w, starts, [None] * n, np.zeros(2), np.ones(2), max_nfev=500, steps="minpack")
    assert np.all(early["nfev"] < res["nfev"])
    assert _distance(early["z"], ref_x, res["jtj"]).min() > ms.LAST_STEP


def test_lmpar_finds_the_parameter_of_the_trust_region():
    """lmpar's step solves (a + par d^2) p = -g with |d p| within 10 % of delta, or is the
    Gauss-Newton step (par 0) when that one is within 1.1 delta; bisection on |d p(par)| agrees."""
    rng = np.random.default_rng(3)
    m, n_lab = 200, 3
    jac = rng.normal(size=(m, 20, n_lab)) * rng.uniform(0.1, 10.0, (m, 1, n_lab))
    a = jac.transpose(0, 2, 1) @ jac
    g = rng.normal(size=(m, n_lab)) * 5.0
    d = np.sqrt(np.diagonal(a, axis1=1, axis2=2)) * rng.uniform(1.0, 2.0, (m, n_lab))
    gn = -np.linalg.solve(a, g[:, :, None])[:, :, 0]
    delta = np.linalg.norm(d * gn, axis=1) * rng.choice([0.01, 0.3, 0.95, 2.0], m)
    par, p = lmpar(a, g, d, delta, rng.choice([0.0, 1.0], m))
    inside = par == 0.0
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(p[inside], gn[inside], rtol=1e-10)
    assert np.all(np.linalg.norm(d * gn, axis=1)[inside] <= 1.1 * delta[inside])
    out = ~inside
    dd = d[out] ** 2
    sol = -np.linalg.solve(a[out] + par[out, None, None] * (dd[:, :, None] * np.eye(n_lab)), g[out, :, None])[:, :, 0]
    np.testing.assert_allclose(p[out], sol, rtol=1e-9, atol=1e-12)
    length = np.linalg.norm(d[out] * p[out], axis=1)
    assert np.all(np.abs(length - delta[out]) <= 0.1 * delta[out] * (1 + 1e-9))

    def scaled_length(i, lam):
        return np.linalg.norm(d[i] * np.linalg.solve(a[i] + lam * np.diag(d[i] ** 2), g[i]))
    for i in np.flatnonzero(out)[:20]:              # the parameter whose step is exactly delta long, by bisection
        lo, hi = 0.0, 1.0
        while scaled_length(i, hi) > delta[i]:
            hi *= 10.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if scaled_length(i, mid) > delta[i] else (lo, mid)
        assert abs(scaled_length(i, par[i]) - delta[i]) <= 0.1 * delta[i] * (1 + 1e-9)
        assert abs(np.log(par[i] / hi)) < 1.0                  # the same order as the exact one


def test_lmpar_on_a_singular_system():
    """J^T J singular (a label with no effect): inside the region the least-norm Gauss-Newton
    step; outside it, the Newton iteration without the lower bound finds the parameter (here
    exactly 3: |p| = 2 / (1 + par) = 0.5)."""
    a = np.array([[[1.0, 0.0], [0.0, 0.0]]] * 2)
    g = np.array([[2.0, 0.0]] * 2)
    par, p = lmpar(a, g, np.ones((2, 2)), np.array([10.0, 0.5]), np.array([0.0, 0.0]))
    assert par[0] == 0.0
    np.testing.assert_allclose(p[0], [-2.0, 0.0])
    assert p[1, 1] == 0.0 and abs(np.linalg.norm(p[1]) - 0.5) <= 0.05
    assert abs(par[1] - 3.0) <= 0.5


def test_solve_with_singular_and_nan_rows():
    """The batched solve: the rows that numpy can solve are solved together, a singular one gets
    the least-norm solution, one with a NaN stays not finite; each flagged."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(6, 3, 3))
    a = a @ a.transpose(0, 2, 1) + np.eye(3)
    a[2] = np.diag([1.0, 2.0, 0.0])
    a[4, 0, 0] = np.nan
    b = rng.normal(size=(6, 3))
    x, solved = ms._solve(a, b)
    np.testing.assert_array_equal(solved, [True, True, False, True, False, True])
    for i in (0, 1, 3, 5):
        np.testing.assert_allclose(x[i], np.linalg.solve(a[i], b[i]), rtol=1e-12)
    np.testing.assert_allclose(x[2], [b[2, 0], b[2, 1] / 2.0, 0.0])
    assert not np.isfinite(x[4]).all()


class _NoRaise:
    """numpy as CuPy behaves by default: a singular system's solution comes back as inf, no error."""

    class linalg:
        @staticmethod
        def solve(a, b):
            out = np.empty(b.shape)
            for i in range(len(a)):
                try:
                    out[i] = np.linalg.solve(a[i], b[i])
                except np.linalg.LinAlgError:
                    out[i] = np.inf
            return out

        def __getattr__(self, name):
            return getattr(np.linalg, name)
    linalg = linalg()

    def __getattr__(self, name):
        return getattr(np, name)


def test_solve_and_lmpar_where_a_singular_solve_does_not_raise():
    """On an array module whose solve returns inf for a singular row (CuPy's default), the rows
    are flagged as on numpy and the singular one gets the least-norm solution; lmpar's steps are
    numpy's."""
    fake = _NoRaise()
    a = np.array([[[1.0, 0.0], [0.0, 0.0]], [[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    b = np.array([[2.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    x_np, ok_np = ms._solve(a, b)
    x_fake, ok_fake = ms._solve(a, b, fake)
    np.testing.assert_array_equal(ok_fake, ok_np)
    np.testing.assert_allclose(x_fake, x_np, rtol=1e-12)
    delta = np.array([10.0, 0.1, 0.5])
    par_np, p_np = lmpar(a, b, np.ones((3, 2)), delta, np.zeros(3))
    par_fake, p_fake = lmpar(a, b, np.ones((3, 2)), delta, np.zeros(3), fake)
    np.testing.assert_allclose(par_fake, par_np, rtol=1e-12)
    np.testing.assert_allclose(p_fake, p_np, rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(p_fake))


def test_a_box_holds_the_labels_the_gradient_pushes_out():
    """A linear problem whose start lies on the lower side of label 0, where the gradient pushes
    outwards, with labels 0 and 1 correlated (0.9): the label is held and the row reaches the
    constrained minimum (scipy's lsq_linear) in one step. From just inside that side the first
    step is clipped and would raise the cost (its quadratic model predicts no reduction): it is
    not accepted, and the row still reaches the minimum, its cost never rising."""
    from scipy.optimize import lsq_linear
    chol = np.linalg.cholesky(np.array([[1.0, 0.9], [0.9, 1.0]]))
    A = np.vstack([chol.T, np.zeros((1, 2))])                 # A^T A: the correlation above
    b = np.concatenate([-np.linalg.solve(chol, [1.0, -0.05]), [1.0]])   # gradient (1, -0.05) at z = 0
    def evaluate(rows, z, model_out):
        r = z @ A.T - b
        return 0.5 * (r ** 2).sum(1), r @ A, np.repeat((A.T @ A)[None], len(z), 0)
    best = lsq_linear(A, b, bounds=([0.0, -np.inf], [np.inf, np.inf]))
    lo, hi = np.array([[0.0, -np.inf]]), np.full((1, 2), np.inf)
    for start in ((0.0, 0.0), (1e-3, 3.0)):    # on the side; just inside it, the first step clipped, uphill
        z = np.array([start])
        cost, grad, jtj = evaluate(None, z, None)
        accepted = []

        def spied(rows, zr, model_out, cost=cost):       # the row's accepted cost when each trial is made
            accepted.append(float(cost[0]))
            return evaluate(rows, zr, model_out)
        nfev = np.ones(1, np.int64)
        conv = ms.minpack_steps(spied, z, cost, grad, jtj, None, nfev, lo, hi, np.zeros((1, 2)), 50, 1e-8, 1e-8,
                                1e-8)
        assert conv[0] and (nfev[0] == 2 if start[0] == 0.0 else nfev[0] > 2)
        np.testing.assert_allclose(z[0], best.x, atol=1e-7)
        assert np.all(np.diff(accepted + [float(cost[0])]) <= 0.0), accepted


def _concave_box(c0k, kappa=0.01, v0=5.0):
    """Two labels, correlated (0.9), from (0.001, v0) next to the lower side of label 0, where
    the first step is clipped into the box; a third residual ``c0k / kappa - kappa (z1 - v0)^2``
    makes the cost concave along that clipped step (the quadratic model then predicts no
    reduction, or an increase smaller than the actual one)."""
    chol = np.linalg.cholesky(np.array([[1.0, 0.9], [0.9, 1.0]]))
    A, z0 = chol.T, np.array([1e-3, v0])
    b = A @ z0 - np.linalg.solve(A.T, np.array([1.0, 0.5]))        # gradient (1, 0.5) at z0

    def evaluate(rows, z, model_out=None):
        r_lin = z @ A.T - b
        r3 = c0k / kappa - kappa * (z[:, 1] - v0) ** 2
        j3 = np.zeros_like(z)
        j3[:, 1] = -2.0 * kappa * (z[:, 1] - v0)
        return (0.5 * ((r_lin ** 2).sum(1) + r3 ** 2), r_lin @ A + r3[:, None] * j3,
                (A.T @ A)[None] + j3[:, :, None] * j3[:, None, :])
    return evaluate, z0


def _run_box(evaluate, z0, max_nfev=200):
    trials = []

    def spied(rows, z, model_out):
        trials.append(tuple(z[0]))
        return evaluate(rows, z, model_out)
    z = z0[None].copy()
    cost, grad, jtj = evaluate(None, z)
    start = cost.copy()
    nfev = np.ones(1, np.int64)
    conv = ms.minpack_steps(spied, z, cost, grad, jtj, None, nfev, np.array([[0.0, -np.inf]]), np.full((1, 2), np.inf),
                            np.zeros((1, 2)), max_nfev, 1e-8, 1e-8, 1e-8)
    return conv[0], int(nfev[0]), z[0], float(cost[0]), float(start[0]), trials


@pytest.mark.parametrize("c0k", [0.3, 0.6])
def test_a_rejected_projected_step_shrinks_the_region(c0k):
    """After a rejected projected step whose slope is uphill the region shrinks (lmder's factor
    capped at 0.5): the row moves on, with no trial point repeated (a larger factor grew the
    region, and the same trial was evaluated until max_nfev)."""
    conv, nfev, z, cost, start, trials = _run_box(*_concave_box(c0k))
    assert conv and nfev < 50 and cost < start
    assert len(set(trials)) == len(trials)


def test_a_projected_step_that_predicts_nothing_does_not_stop_the_row():
    """A projected step that predicts no reduction and whose actual change is below ftol (the
    concave term tuned so that the first trial's cost equals the start's) says nothing about
    convergence: the row goes on and lowers its cost (it stopped, 'converged', at its start)."""
    ev0, z0 = _concave_box(0.0)
    first = _run_box(ev0, z0, max_nfev=2)[5][0]
    d2 = (first[1] - 5.0) ** 2
    rise = ev0(None, np.array([first]))[0][0] - ev0(None, z0[None])[0][0]
    conv, nfev, z, cost, start, trials = _run_box(*_concave_box(rise / d2))
    assert trials[0] == first
    assert nfev > 2 and cost < start


def test_a_start_whose_cost_is_not_finite_is_given_up():
    def evaluate(rows, z, model_out=None):
        return np.full(len(z), np.inf), np.zeros_like(z), np.repeat(np.eye(2)[None], len(z), 0)
    z = np.zeros((2, 2))
    cost, grad, jtj = evaluate(None, z)
    nfev = np.ones(2, np.int64)
    box = np.full((2, 2), np.inf)
    conv = ms.minpack_steps(evaluate, z, cost, grad, jtj, None, nfev, -box, box, np.zeros((2, 2)), 50, 1e-8, 1e-8, 1e-8)
    assert not conv.any() and np.all(nfev == 1)


@pytest.fixture(scope="module")
def noisy():
    from .conftest import mock_set
    return mock_set(60, seed=17, snr=[20, 100])


@pytest.mark.parametrize("n_starts", [1, 3])
def test_the_inferer_with_minpack_steps_equals_per_star(small_model, noisy, n_starts):
    """``steps = "minpack"``: the batched inferer's labels equal the per-star solver's to within
    the last-step bound, on every star (with one start and three), and their errors and starts."""
    one = registry.create("inferer", "lm", {"batched": False, "n_starts": n_starts}).infer(
        small_model, noisy.flux, noisy.ivar)
    bat = registry.create("inferer", "lm", {"steps": "minpack", "n_starts": n_starts}).infer(
        small_model, noisy.flux, noisy.ivar)
    assert _agree(one, bat).max() <= ms.LAST_STEP * 1.01
    np.testing.assert_array_equal(bat.converged, one.converged)
    np.testing.assert_array_equal(bat.extra["start"], one.extra["start"])
    both = one.converged & bat.converged
    np.testing.assert_allclose(bat.errors[both], one.errors[both], rtol=1e-3)
    if n_starts == 1:   # (with 3, each star's nfev is its kept start's: of two that tie, either)
        # the last-step rule: an evaluation less on some stars (lmder's last, confirming one), none more
        assert np.all(bat.nfev <= one.nfev) and (bat.nfev < one.nfev).sum() >= 10


def test_minpack_steps_with_a_gaussian_prior_and_a_box(small_model, noisy, monkeypatch):
    """A Gaussian prior is part of lmder's residuals (per star: method "lm", the same labels); a box
    is kept by projection (per star: trf, another path, the labels inside it)."""
    train = small_model.train_labels
    gauss = LeastSquaresForm(np.array([np.nan, 3.5, np.nan]), np.array([np.inf, 0.3, np.inf]),
                             np.full(3, -np.inf), np.full(3, np.inf))
    lo, hi = train.min(0) + [500.0, 0.0, 0.0], train.max(0) - [500.0, 0.0, 0.0]

    class Form(Prior):
        def __init__(self, form):
            self.form = form

        def least_squares_form(self, star=None):
            return self.form
    one = registry.create("inferer", "lm", {"batched": False}).infer(small_model, noisy.flux, noisy.ivar,
                                                                    prior=Form(gauss))
    bat = registry.create("inferer", "lm", {"steps": "minpack"}).infer(small_model, noisy.flux, noisy.ivar,
                                                                       prior=Form(gauss))
    assert _agree(one, bat).max() <= ms.LAST_STEP * 1.01
    boxed = LeastSquaresForm(gauss.mean, gauss.sigma, lo, hi)
    import slamfw.stats.batched_lm as blm
    rose = []

    def spied(evaluate, z, cost, *args, **kwargs):        # no row ends above its start's cost
        start = cost.copy()
        out = ms.minpack_steps(evaluate, z, cost, *args, **kwargs)
        rose.append(int((cost > start).sum()))
        return out
    monkeypatch.setattr(blm, "minpack_steps", spied)
    res = registry.create("inferer", "lm", {"steps": "minpack"}).infer(small_model, noisy.flux, noisy.ivar,
                                                                       prior=Form(boxed))
    trf = registry.create("inferer", "lm", {"batched": False}).infer(small_model, noisy.flux, noisy.ivar,
                                                                    prior=Form(boxed))
    assert rose and sum(rose) == 0
    assert res.converged.all()
    assert np.all((res.labels[:, 0] >= lo[0]) & (res.labels[:, 0] <= hi[0]))
    assert res.extra["at_bound"].sum() >= 5
    # trf is another algorithm: nearly every star at its labels, and none at a much worse chi^2
    both = res.converged & trf.converged
    assert (_agree(trf, res) <= 0.05).all(axis=1).mean() >= 0.9
    assert np.all(res.chi2[both] <= trf.chi2[both] * 1.02)


def test_secant_steps_hold_labels_on_a_box_and_converge(small_model, noisy):
    """The secant steps hold a label that the gradient pushes out of the box, as MINPACK's path
    does, and stop when the free labels are converged. Before, their step and their tests used the
    whole gradient: a star on the box's edge ran to max_nfev (200 evaluations) and was reported
    not converged."""
    train = small_model.train_labels
    lo, hi = train.min(0) + [500.0, 0.0, 0.0], train.max(0) - [500.0, 0.0, 0.0]

    class Box(Prior):
        def least_squares_form(self, star=None):
            return LeastSquaresForm(np.full(3, np.nan), np.full(3, np.inf), lo, hi)
    res = {steps: registry.create("inferer", "lm", {"steps": steps}).infer(small_model, noisy.flux, noisy.ivar,
                                                                           prior=Box())
           for steps in ("minpack", "secant")}
    sec, mp = res["secant"], res["minpack"]
    edge = sec.extra["at_bound"]
    assert edge.sum() >= 5 and sec.converged.all()
    assert sec.nfev[edge].max() <= 30 and sec.nfev.mean() <= 1.5 * mp.nfev.mean()
    assert np.all((sec.labels[:, 0] >= lo[0]) & (sec.labels[:, 0] <= hi[0]))
    assert (_agree(mp, sec) <= 0.05).all(axis=1).mean() >= 0.9
    assert np.all(sec.chi2 <= mp.chi2 * 1.02)


def test_minpack_steps_through_a_device_evaluator_equal_the_cpus(small_model, noisy):
    """The device path's code (here on numpy, through the emulator's ``on_device`` evaluator; a
    GPU is not needed, nor tested here: ``tests/test_device.py``) takes the same steps as the
    CPU's."""
    from slamfw.stats.likelihood import likelihood_weights
    emu = small_model.emulator
    w = likelihood_weights(noisy.ivar, emu.model_error_)
    mean, scale = small_model.train_labels.mean(0), small_model.train_labels.std(0)
    starts = ((small_model.train_labels[:3] - mean) / scale)[None].repeat(len(w), 0)
    args = (emu, noisy.flux, w, starts, [None] * len(w), mean, scale)
    cpu = batched_lm(*args, steps="minpack")
    dev = batched_lm(*args, steps="minpack", evaluate=emu.on_device(np))
    assert cpu["converged"].mean() > 0.9
    np.testing.assert_allclose(dev["z"], cpu["z"], atol=1e-6)
    np.testing.assert_array_equal(dev["nfev"], cpu["nfev"])


def test_the_last_step_rule_off_through_the_config(small_model, noisy):
    """``last_step = 0``: the batched rows make every evaluation lmder makes (one start); the
    inferer's default is the core's."""
    assert registry.create("inferer", "lm", {}).last_step == ms.LAST_STEP
    one = registry.create("inferer", "lm", {"batched": False, "n_starts": 1}).infer(small_model, noisy.flux,
                                                                                    noisy.ivar)
    bat = registry.create("inferer", "lm", {"n_starts": 1, "last_step": 0.0}).infer(small_model, noisy.flux,
                                                                                   noisy.ivar)
    np.testing.assert_array_equal(bat.nfev, one.nfev)
    assert _agree(one, bat).max() < 1e-6


def test_an_unknown_step_rule_is_refused():
    with pytest.raises(ConfigError, match="steps"):
        registry.create("inferer", "lm", {"steps": "dogleg"}, where="inferer.name")
    with pytest.raises(ConfigError, match="batched = true"):
        registry.create("inferer", "lm", {"steps": "secant", "batched": False})
    for params in ({"last_step": 0.0, "batched": False}, {"last_step": 0.02, "steps": "secant"}):
        with pytest.raises(ConfigError, match="last_step"):          # it would do nothing there
            registry.create("inferer", "lm", params)
    with pytest.raises(ValueError, match="steps"):
        batched_lm(_LineModel(), np.ones((1, 80)), np.ones((1, 80)), np.zeros((1, 1, 3)), [None], np.zeros(3),
                   np.ones(3), steps="dogleg")


def test_the_model_terms_of_a_projected_step_are_the_quadratic_models_and_lmders_for_its_own_step(rng):
    """``_model_terms``: a step projected into the box predicts the undamped quadratic model's
    reduction of |r|^2 and has its slope (checked against J and r themselves); for lmder's own
    step both branches give the same numbers, and its prediction is that model's too."""
    b, n_pix, n_lab = 6, 40, 3
    jac, r = rng.normal(size=(b, n_pix, n_lab)), rng.normal(size=(b, n_pix))
    g, a = np.einsum("bpl,bp->bl", jac, r), np.einsum("bpl,bpm->blm", jac, jac)
    d, par, fn = rng.uniform(0.5, 2.0, (b, n_lab)), rng.uniform(0.1, 3.0, b), np.linalg.norm(r, axis=1)
    lm_step = -np.linalg.solve(a + par[:, None, None] * np.eye(n_lab) * d[:, None, :] ** 2, g[:, :, None])[:, :, 0]
    own, proj = np.zeros(b, bool), np.ones(b, bool)
    cost2 = lambda p: ((r + np.einsum("bpl,bl->bp", jac, p)) ** 2).sum(1)     # noqa: E731  |r + J p|^2

    jp, pre_own, dir_own = ms._model_terms(lm_step, g, a, par, np.linalg.norm(d * lm_step, axis=1), fn, own)
    _, pre_proj, dir_proj = ms._model_terms(lm_step, g, a, par, np.linalg.norm(d * lm_step, axis=1), fn, proj)
    np.testing.assert_allclose(pre_own, pre_proj, rtol=1e-10)
    np.testing.assert_allclose(dir_own, dir_proj, rtol=1e-10)
    np.testing.assert_allclose(pre_own, (fn ** 2 - cost2(lm_step)) / fn ** 2, rtol=1e-10)
    assert np.all(dir_own < 0) and np.all(pre_own > 0)

    step = rng.normal(size=(b, n_lab))            # any step, as a projection makes one
    jp, pre, dirder = ms._model_terms(step, g, a, par, np.linalg.norm(d * step, axis=1), fn, proj)
    np.testing.assert_allclose(jp, (np.einsum("bpl,bl->bp", jac, step) ** 2).sum(1), rtol=1e-12)
    np.testing.assert_allclose(pre, (fn ** 2 - cost2(step)) / fn ** 2, rtol=1e-10, atol=1e-14)
    h = 1e-6
    slope = (cost2(h * step) - cost2(-h * step)) / (4 * h) / fn ** 2      # d/dt |r + t J p|^2 / 2 at t = 0
    np.testing.assert_allclose(dirder, slope, rtol=1e-6)

    # rows of both kinds in one call: each row gets its own kind's terms (lmder's from par and |D p|)
    mixed = np.arange(b) % 2 == 0
    steps = np.where(mixed[:, None], step, lm_step)
    _, pre_mix, dir_mix = ms._model_terms(steps, g, a, par, np.linalg.norm(d * steps, axis=1), fn, mixed)
    np.testing.assert_allclose(pre_mix, np.where(mixed, pre, pre_own), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dir_mix, np.where(mixed, dirder, dir_own), rtol=1e-10)
    # lmder's rows use par and |D p|, not g.p: with another par they no longer equal the model's
    _, pre_par, dir_par = ms._model_terms(steps, g, a, 2 * par, np.linalg.norm(d * steps, axis=1), fn, mixed)
    assert np.all((pre_par != pre_mix) == ~mixed) and np.all((dir_par != dir_mix) == ~mixed)
