"""The plugin's own tests: slamfw's conformance kit, and the LOO shortcut against refitting."""
import numpy as np

from slamfw.testing import check_emulator, make_check_data
from slamfw_linear import LinearEmulator


def test_conformance():
    check_emulator(LinearEmulator)


def test_loo_equals_refitting():
    labels, flux, ivar = make_check_data(n_stars=30, n_pixels=4)
    ivar[3, 1] = 0.0
    emu = LinearEmulator(ridge=0.1).fit(labels, flux, ivar)
    z = emu.flux_scaler_.transform(flux)
    for j in range(4):
        good = np.flatnonzero(ivar[:, j] > 0)
        pred = []
        for i in good:
            keep = good[good != i]
            X = np.column_stack([np.ones(keep.size), emu.label_scaler_.transform(labels[keep])])
            A = X.T @ X + 0.1 * np.diag([0.0, 1.0, 1.0, 1.0])
            c = np.linalg.solve(A, X.T @ z[keep, j])
            pred.append(np.r_[1.0, emu.label_scaler_.transform(labels[i:i + 1])[0]] @ c)
        np.testing.assert_allclose(emu.cv_mse_[j], np.mean((np.array(pred) - z[good, j]) ** 2), rtol=1e-10)
