import numpy as np
import pytest
from sklearn.svm import SVR

from slamfw import DataError, LocalExecutor, NotFittedError, registry, using_executor
from slamfw_plugins.emulators.slam import SlamEmulator

from .conftest import interrupted_at_call


def test_grid_search_and_attributes(small_slam, small_train):
    emu = small_slam
    p, m = small_train.n_pixels, small_train.n_stars
    assert emu.cv_mse_grid_.shape == (p, 2, 2) and emu.cv_md_grid_.shape == (p, 2, 2)
    assert emu.dual_coef_.shape == (p, m) and emu.model_error_.shape == (p,)
    # the chosen point is the lowest CV MSE of each pixel's grid (paper §2.2.1)
    np.testing.assert_allclose(emu.cv_mse_, np.nanmin(emu.cv_mse_grid_.reshape(p, -1), axis=1))
    assert set(np.unique(emu.C_)) <= {1.0, 10.0} and set(np.unique(emu.gamma_)) <= {0.1, 1.0}
    # the final fit on all stars beats cross-validation, as it must
    assert np.median(emu.mse_) <= np.median(emu.cv_mse_)
    # model error = sqrt(CV MSE) in flux units
    cv_var = emu.cv_mse_ * emu.flux_scaler_.scale_ ** 2   # CV MSE less the training noise (one rule, in the base)
    np.testing.assert_allclose(emu.model_error_, np.sqrt(np.maximum(cv_var - emu.noise_var_, 0.01 * cv_var)))
    assert np.all(emu.model_error_ > 0)
    # line pixels are learned well: H-beta core pixels have CV MSE far below 1
    core = np.abs(small_train.wave - 4861.3) < 3
    assert np.median(emu.cv_mse_[core]) < 0.05


def test_cv_mse_by_hand_for_one_pixel(small_slam, small_train):
    """Eq. 5-6 at the chosen point recomputed with plain sklearn SVR(kernel='rbf') on the same folds."""
    from sklearn.model_selection import KFold
    emu = small_slam
    j = int(np.argmin(np.abs(small_train.wave - 4861.3)))
    X = emu.label_scaler_.transform(small_train.labels)
    y = emu.flux_scaler_.transform(small_train.flux)[:, j]
    pred = np.empty_like(y)
    for tr, te in KFold(3, shuffle=True, random_state=0).split(X):
        pred[te] = SVR(C=emu.C_[j], gamma=emu.gamma_[j], epsilon=0.05).fit(X[tr], y[tr]).predict(X[te])
    # equal up to LIBSVM's stopping tolerance (1e-3): the kernels agree to rounding only
    np.testing.assert_allclose(emu.cv_mse_[j], np.mean((pred - y) ** 2), rtol=2e-3)
    np.testing.assert_allclose(emu.cv_md_[j], np.mean(pred - y), atol=2e-3 * np.sqrt(emu.cv_mse_[j]))


def test_grid_pruning_changes_no_choice(small_train):
    """prune_grid (the default) skips only points that cannot win: the same choices, CV MSE / MD and
    model as scoring the whole grid; every pruned point's whole-grid CV MSE is above the best."""
    kw = dict(C=[1.0, 10.0, 100.0], gamma=[0.1, 1.0], n_folds=3)
    ivar = small_train.ivar.copy()
    rng = np.random.default_rng(3)
    ivar[rng.uniform(size=ivar.shape) < 0.05] = 0.0        # stars missing from some pixels: their own folds
    args = (small_train.labels, small_train.flux, ivar)
    pruned = registry.create("emulator", "slam", kw).fit(*args)
    whole = registry.create("emulator", "slam", dict(kw, prune_grid=False)).fit(*args)
    assert pruned.prune_grid and not whole.prune_grid
    for name in ("C_", "gamma_", "cv_mse_", "cv_md_", "dual_coef_", "intercept_", "mse_"):
        np.testing.assert_array_equal(getattr(pruned, name), getattr(whole, name), err_msg=name)
    skipped = np.isnan(pruned.cv_mse_grid_)
    assert not np.isnan(whole.cv_mse_grid_).any()
    assert 0.05 < skipped.mean() < 0.95          # it prunes, and not everything
    np.testing.assert_array_equal(np.isnan(pruned.cv_md_grid_), skipped)
    np.testing.assert_array_equal(pruned.cv_mse_grid_[~skipped], whole.cv_mse_grid_[~skipped])
    best = whole.cv_mse_[:, None, None] * np.ones_like(whole.cv_mse_grid_)
    assert np.all(whole.cv_mse_grid_[skipped] > best[skipped])


def test_grid_pruning_bound_by_hand(monkeypatch):
    """_cv_grid's bound on planned fold errors: a point is dropped only once its finished folds
    already sum above the best finished point's total, and never runs its remaining folds."""
    import slamfw_plugins.emulators.slam as slam_mod
    from sklearn.model_selection import KFold
    m = 30
    folds = list(KFold(3).split(np.zeros((m, 1))))
    # per grid point (C = 1, 2, 3), the squared residuals of each fold's 10 test stars sum to:
    planned = {1.0: [1.0, 1.0, 1.0],     # total 3, the first best
               2.0: [2.5, 0.1, 0.1],     # 2.5 after one fold, close to 3 but below: total 2.7, the winner
               3.0: [2.0, 2.0, 0.0]}     # 4 after two folds > 2.7: dropped before its third fold
    calls = []

    def fake_fit_predict(k_tr, y, k_te, C, *args):
        calls.append(C)
        return np.full(k_te.shape[0], np.sqrt(planned[C][calls.count(C) - 1] / k_te.shape[0]))

    monkeypatch.setattr(slam_mod, "_fit_predict", fake_fit_predict)
    built = []

    def design(a, rows, cols, buffer):
        built.append((a, rows.size, cols.size))
        buffers.append(buffer)
        return np.zeros((rows.size, cols.size))
    buffers = []

    args = (np.zeros(m), np.ones(m, bool), design, [None], [1.0, 2.0, 3.0], 0.05, 1e-3, folds, -1)
    mse, md = slam_mod._cv_grid(*args, prune=True)
    pruned = mse.copy()
    assert calls == [1.0] * 3 + [2.0] * 3 + [3.0] * 2
    assert built == [(0, 20, 20), (0, 10, 20)] * 3        # each fold's kernel blocks built once, for every C
    assert buffers == [(kind, f) for f in range(3) for kind in ("train", "test")]     # into buffers of its own
    np.testing.assert_allclose(mse[0, :2], [3.0 / m, 2.7 / m])
    assert np.isnan(mse[0, 2]) and np.isnan(md[0, 2])
    calls.clear()
    mse, _ = slam_mod._cv_grid(*args, prune=False)
    assert len(calls) == 9
    np.testing.assert_allclose(mse[0], [3.0 / m, 2.7 / m, 4.0 / m])
    # blocks over the memory allowed (8 bytes x 3 folds x 20 x 30 = 14400 here): built for each fit
    for keep_bytes, per_fit in ((14400, False), (14399, True)):
        calls.clear()
        built.clear()
        buffers.clear()
        again = slam_mod._cv_grid(*args, prune=True, keep_bytes=keep_bytes)
        assert calls == [1.0] * 3 + [2.0] * 3 + [3.0] * 2
        assert built == [(0, 20, 20), (0, 10, 20)] * (8 if per_fit else 3)
        if per_fit:             # one fold's pair at a time, in one pair of buffers
            assert buffers == [("train", 0), ("test", 0)] * 8
        np.testing.assert_array_equal(again[0], pruned)


def test_predict_matches_per_pixel_sklearn(small_slam, small_train):
    emu = small_slam
    X = emu.label_scaler_.transform(small_train.labels)
    Y = emu.flux_scaler_.transform(small_train.flux)
    theta = small_train.labels[:7] * 1.001
    ours = emu.predict(theta)
    for j in (0, 40, 77):
        ref = SVR(C=emu.C_[j], gamma=emu.gamma_[j], epsilon=0.05).fit(X, Y[:, j])
        expect = ref.predict(emu.label_scaler_.transform(theta)) * emu.flux_scaler_.scale_[j] + emu.flux_scaler_.mean_[j]
        # equal up to LIBSVM's stopping tolerance, in units of the pixel's training scatter
        np.testing.assert_allclose(ours[:, j], expect, atol=2e-3 * emu.flux_scaler_.scale_[j])


def test_predict_vectorised_equals_one_at_a_time(small_slam, small_train):
    theta = small_train.labels[:5]
    many = small_slam.predict(theta)
    one = np.vstack([small_slam.predict(t[None]) for t in theta])
    np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)


def test_jacobian_matches_finite_differences(small_slam):
    """The analytic jacobian against central differences of predict, computed here."""
    theta = np.array([[6200.0, 3.5, -0.6], [8100.0, 2.2, 0.1]])
    jac = small_slam.jacobian(theta)
    assert jac.shape == (2, small_slam.n_pixels_, 3)
    fd = np.empty_like(jac)
    for k, h in enumerate((0.5, 1e-4, 1e-4)):
        up, dn = theta.copy(), theta.copy()
        up[:, k] += h
        dn[:, k] -= h
        fd[:, :, k] = (small_slam.predict(up) - small_slam.predict(dn)) / (2 * h)
    scale = np.abs(fd).max(axis=1, keepdims=True)
    assert np.max(np.abs(jac - fd) / scale) < 1e-4
    # and the check can fail: a jacobian with one label's column flipped is far off
    flipped = jac.copy()
    flipped[:, :, 1] *= -1
    assert np.max(np.abs(flipped - fd) / scale) > 0.5


def test_deterministic_given_seed(small_train):
    kw = dict(C=[1.0, 10.0], gamma=[0.3], n_folds=3, random_state=5)
    a = registry.create("emulator", "slam", kw).fit(small_train.labels, small_train.flux, small_train.ivar)
    with using_executor(LocalExecutor(workers=2)):   # two worker processes, other task sizes: the same model
        b = registry.create("emulator", "slam", dict(kw, pixels_per_task=17)).fit(
            small_train.labels, small_train.flux, small_train.ivar)
    np.testing.assert_array_equal(a.cv_mse_grid_, b.cv_mse_grid_)
    np.testing.assert_array_equal(a.predict(small_train.labels[:3]), b.predict(small_train.labels[:3]))


def test_bad_pixels_excluded_per_pixel(small_train):
    ivar = small_train.ivar.copy()
    flux = small_train.flux.copy()
    ivar[:10, 5] = 0
    flux[:10, 5] = 99.0  # garbage where ivar is 0 must not matter
    emu = registry.create("emulator", "slam", dict(C=[1.0], gamma=[0.3], n_folds=3))
    emu.fit(small_train.labels, flux, ivar)
    assert np.all(emu.dual_coef_[5, :10] == 0)
    assert abs(emu.flux_scaler_.mean_[5] - small_train.flux[10:, 5].mean()) < 1e-12


def test_errors():
    emu = registry.create("emulator", "slam", dict(C=[1.0], gamma=[0.3], n_folds=3))
    with pytest.raises(NotFittedError):
        emu.predict(np.zeros((1, 3)))
    labels = np.random.default_rng(0).normal(size=(20, 3))
    flux = np.random.default_rng(1).normal(size=(20, 4))
    flux[:, 2] = 1.0
    with pytest.raises(DataError, match="pixel 2 is constant"):
        emu.fit(labels, flux, np.ones_like(flux))
    labels[3, 1] = np.nan
    with pytest.raises(DataError, match="training star 3 has a non-finite label"):
        emu.fit(labels, np.random.default_rng(1).normal(size=(20, 4)), np.ones((20, 4)))


def test_label_shape_errors(small_slam):
    with pytest.raises(DataError, match=r"expects labels of shape \(K, 3\)"):
        small_slam.predict(np.zeros((2, 2)))
    with pytest.raises(DataError, match="not finite"):
        small_slam.jacobian(np.array([[5000.0, np.nan, 0.0]]))


def test_state_round_trip(small_slam, small_train):
    arrays, meta = small_slam.to_state()
    assert all(a.dtype != object for a in arrays.values())
    other = SlamEmulator.from_state(arrays, {"params": small_slam.get_params(), **meta})
    theta = small_train.labels[:4]
    np.testing.assert_array_equal(other.predict(theta), small_slam.predict(theta))
    np.testing.assert_array_equal(other.model_error_, small_slam.model_error_)


def test_killed_training_resumes_from_finished_blocks(small_train, tmp_path, monkeypatch):
    import slamfw_plugins.emulators.slam as slam_mod
    kw = dict(C=[1.0], gamma=[0.3], n_folds=3, pixels_per_task=20)
    reference = registry.create("emulator", "slam", kw).fit(small_train.labels, small_train.flux, small_train.ivar)
    real = slam_mod._fit_pixel_block
    calls = []
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", interrupted_at_call(real, 3, calls))
    emu = registry.create("emulator", "slam", kw)
    emu.workdir = tmp_path
    with pytest.raises(KeyboardInterrupt):
        emu.fit(small_train.labels, small_train.flux, small_train.ivar)
    assert len(list(tmp_path.rglob("block_*.npz"))) == 2
    calls.clear()
    monkeypatch.setattr(slam_mod, "_fit_pixel_block", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    emu.fit(small_train.labels, small_train.flux, small_train.ivar)
    n_blocks = -(-small_train.n_pixels // 20)
    assert len(calls) == n_blocks - 2
    np.testing.assert_array_equal(emu.dual_coef_, reference.dual_coef_)
    np.testing.assert_array_equal(emu.cv_mse_grid_, reference.cv_mse_grid_)
    # different data or parameters never reuse those blocks
    other = registry.create("emulator", "slam", dict(kw, C=[2.0]))
    other.workdir = tmp_path
    calls.clear()
    other.fit(small_train.labels, small_train.flux, small_train.ivar)
    assert len(calls) == n_blocks


def test_kernel_paths_agree(small_train):
    """Shared precomputed kernels and LIBSVM's own RBF agree."""
    kw = dict(C=[1.0, 10.0], gamma=[0.3], n_folds=3, prune_grid=False)   # whole grids compared
    args = (small_train.labels, small_train.flux, small_train.ivar)
    cached = registry.create("emulator", "slam", kw).fit(*args)
    on_the_fly = registry.create("emulator", "slam", dict(kw, max_kernel_stars=2)).fit(*args)
    np.testing.assert_allclose(on_the_fly.cv_mse_grid_, cached.cv_mse_grid_, rtol=5e-3, atol=1e-5)
    theta = small_train.labels[:5]
    np.testing.assert_allclose(on_the_fly.predict(theta), cached.predict(theta),
                               atol=3e-3 * cached.flux_scaler_.scale_.max())


def test_unshuffled_folds_are_consecutive_like_astroslams(small_train):
    """``shuffle_folds = false``: sklearn's unshuffled KFold (what astroslam's GridSearchCV uses):
    the CV MSE of a pixel equals the one computed here by hand with those folds."""
    from sklearn.model_selection import KFold
    from sklearn.svm import SVR
    sub = small_train.subset(np.arange(40))
    labels, flux, ivar = sub.labels, sub.flux[:, :6], sub.ivar[:, :6]
    params = dict(C=[10.0], gamma=[0.1], n_folds=4, pixels_per_task=6)
    plain = registry.create("emulator", "slam", {**params, "shuffle_folds": False}).fit(labels, flux, ivar)
    shuffled = registry.create("emulator", "slam", params).fit(labels, flux, ivar)
    x = plain.label_scaler_.transform(labels)
    y = plain.flux_scaler_.transform(flux)[:, 2]
    pred = np.empty_like(y)
    for tr, te in KFold(4).split(x):
        pred[te] = SVR(kernel="rbf", gamma=0.1, C=10.0, epsilon=0.05).fit(x[tr], y[tr]).predict(x[te])
    assert plain.cv_mse_[2] == pytest.approx(np.mean((pred - y) ** 2), rel=1e-3)   # LIBSVM to its tol
    assert shuffled.cv_mse_[2] != pytest.approx(plain.cv_mse_[2], rel=1e-2)


def test_jacobian_without_the_stacked_coefficients_is_the_same(small_slam, monkeypatch):
    """Above STACKED_BYTES per gamma group (large training sets) the value and each label's
    derivative are separate products of the kernel; they equal the stacked product's."""
    import copy

    from slamfw_plugins.emulators import _rbf
    theta = np.array([[6200.0, 3.5, -0.6], [8100.0, 2.2, 0.1], [5000.0, 4.4, -1.5]])
    flux, jac = small_slam.predict_and_jacobian(theta)
    fresh = copy.deepcopy(small_slam)
    for grp in fresh._rbf.groups:
        grp.stacked = None
    monkeypatch.setattr(_rbf, "STACKED_BYTES", 0)
    flux2, jac2 = fresh.predict_and_jacobian(theta)
    assert all(grp.stacked is None for grp in fresh._rbf.groups)
    np.testing.assert_allclose(flux2, flux, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(jac2, jac, rtol=1e-10, atol=1e-12 * np.abs(jac).max())


def test_numpy_kernel_block_gather_is_fancy_indexing(monkeypatch):
    """Without numba the fold kernel blocks are gathered by two ``take`` calls: ``K[np.ix_(rows,
    cols)]`` (the compiled gather is tested in test_svr_solver.py)."""
    from slamfw_plugins.emulators import _svr_solver
    monkeypatch.setattr(_svr_solver, "HAVE_NUMBA", False)
    rng = np.random.default_rng(4)
    K = rng.normal(size=(40, 40))
    rows, cols = np.sort(rng.choice(40, 25, replace=False)), rng.choice(40, 7, replace=False)
    np.testing.assert_array_equal(_svr_solver.submatrix(K, rows, cols), K[np.ix_(rows, cols)])
    buf = np.full((25, 7), np.nan)
    assert _svr_solver.submatrix(K, rows, cols, out=buf) is buf
    np.testing.assert_array_equal(buf, K[np.ix_(rows, cols)])



@pytest.mark.parametrize("solver", ["libsvm", "smo"])
def test_kept_rebuilt_and_mixed_fold_blocks_give_the_same_model(small_train, monkeypatch, solver):
    """The folds' blocks in buffers shared by the pixels of a task: kept for every C, rebuilt for
    each, or both in one task (pixels with bad stars have smaller blocks: under a limit that keeps
    theirs and rebuilds the others'), the model is the same, every array bit for bit; between
    pixels only the final fit's buffer is held."""
    import slamfw_plugins.emulators._svr_solver as solver_mod
    import slamfw_plugins.emulators.slam as slam_mod
    from slamfw import SerialExecutor, using_executor
    real, built = solver_mod.submatrix, []
    monkeypatch.setattr(solver_mod, "submatrix", lambda *a, **k: (built.append(1), real(*a, **k))[1])
    labels, flux, ivar = small_train.labels, small_train.flux[:, :8], small_train.ivar[:, :8].copy()
    m = len(labels)
    ivar[: m // 3, 1] = 0.0                     # pixels 1 and 5 with a third and half the stars bad
    ivar[: m // 2, 5] = 0.0
    held = []
    real_keep_only = slam_mod._BlockBuffers.keep_only

    def keep_only(self, name):
        real_keep_only(self, name)
        held.append(self.names())
    monkeypatch.setattr(slam_mod._BlockBuffers, "keep_only", keep_only)
    params = dict(C=[1.0, 10.0, 100.0], gamma=[0.1, 1.0], n_folds=3, solver=solver, pixels_per_task=8,
                  prune_grid=False)
    n_tr = (m - m // 3) * 2 // 3 + 1          # about the training rows of pixel 1's folds
    fits, builds = {}, {}
    with using_executor(SerialExecutor()):
        for what, limit in (("kept", np.inf), ("rebuilt", 0), ("mixed", 8 * 3 * n_tr * (n_tr + n_tr // 2))):
            monkeypatch.setattr(slam_mod, "FOLD_BLOCKS_BYTES", limit)
            built.clear()
            fits[what] = registry.create("emulator", "slam", params).fit(labels, flux, ivar)
            builds[what] = len(built)
    # per pixel 2 gammas x 3 folds x 2 blocks, once (kept) or for each of the 3 Cs, and the final fit's:
    # in "mixed", pixels 1 and 5 keep theirs, the 6 others rebuild them
    assert builds == {"kept": 8 * 13, "rebuilt": 8 * 37, "mixed": 2 * 13 + 6 * 37}, builds
    for what in ("rebuilt", "mixed"):
        for name in ("dual_coef_", "intercept_", "gamma_", "C_", "cv_mse_grid_", "cv_md_grid_", "mse_", "md_"):
            np.testing.assert_array_equal(getattr(fits[what], name), getattr(fits["kept"], name),
                                          err_msg=f"{what} {name}")
    assert len(held) == 3 * 8 and all(names == [("train", 0)] for names in held), held


def test_block_buffers_serve_again_grow_and_free():
    from slamfw_plugins.emulators.slam import _BlockBuffers
    buffers = _BlockBuffers()
    first = buffers.get(("train", 0), (3, 4))
    first[:] = 1.0
    smaller = buffers.get(("train", 0), (2, 5))           # the same memory, a C-contiguous view
    assert np.shares_memory(first, smaller) and smaller.shape == (2, 5) and smaller.flags.c_contiguous
    larger = buffers.get(("train", 0), (5, 5))            # a new buffer; the old view stays usable
    assert not np.shares_memory(first, larger) and np.all(first[2:] == 1.0)
    buffers.get(("test", 1), (2, 2))
    assert sorted(buffers.names()) == [("test", 1), ("train", 0)]
    buffers.keep_only(("train", 0))
    assert buffers.names() == [("train", 0)] and np.shares_memory(buffers.get(("train", 0), (5, 5)), larger)


def test_fold_blocks_over_the_memory_limit_are_built_for_each_fit_with_the_same_model(small_train, monkeypatch):
    """slam's fit passes FOLD_BLOCKS_BYTES to the CV grid when the kernels are shared: with the
    limit at 0 bytes every fold's blocks are built for each C (more builds), the model the same."""
    import slamfw_plugins.emulators._svr_solver as solver_mod
    import slamfw_plugins.emulators.slam as slam_mod
    from slamfw import SerialExecutor, using_executor
    real, built = solver_mod.submatrix, []
    monkeypatch.setattr(solver_mod, "submatrix", lambda *a, **k: (built.append(1), real(*a, **k))[1])
    labels, flux, ivar = small_train.labels, small_train.flux[:, :12], small_train.ivar[:, :12]
    params = dict(C=[1.0, 10.0, 100.0], gamma=[0.1, 1.0], n_folds=3, prune_grid=False)
    with using_executor(SerialExecutor()):
        kept = registry.create("emulator", "slam", params).fit(labels, flux, ivar)
        n_kept = len(built)
        monkeypatch.setattr(slam_mod, "FOLD_BLOCKS_BYTES", 0)
        built.clear()
        rebuilt = registry.create("emulator", "slam", params).fit(labels, flux, ivar)
    # per pixel: 2 gammas x 3 folds x 2 blocks, kept for the 3 Cs, or built for each; and the final fit's block
    assert n_kept == 12 * (2 * 3 * 2 + 1) and len(built) == 12 * (2 * 3 * 2 * 3 + 1), (n_kept, len(built))
    for name in ("dual_coef_", "intercept_", "gamma_", "C_", "cv_mse_grid_", "cv_md_grid_"):
        np.testing.assert_array_equal(getattr(rebuilt, name), getattr(kept, name), err_msg=name)
