"""The spline normaliser's smoothing spline is scipy's make_smoothing_spline, bit for bit, without its Python loop."""
import numpy as np
import pytest
from scipy.interpolate import make_smoothing_spline

from slamfw_plugins.normalizers._smoothing import smoothing_spline


@pytest.mark.parametrize("n", [5, 6, 50, 601, 1900])
@pytest.mark.parametrize("lam", [0.0, 1e2, 5e8, 1e13])
def test_equals_scipy(n, lam):
    rng = np.random.default_rng(n)
    x = np.cumsum(rng.uniform(0.2, 3.0, n)) + 3900.0          # uneven steps, as after pixel rejection
    y = 1 + 0.3 * np.sin(x / 150.0) + rng.normal(0, 0.05, n)
    ref = make_smoothing_spline(x, y, lam=lam)
    mine = smoothing_spline(x, y, lam)
    np.testing.assert_array_equal(mine.t, ref.t)
    np.testing.assert_array_equal(mine.c, ref.c)
    t = np.linspace(x[0] - 20, x[-1] + 20, 997)                  # beyond the ends too
    np.testing.assert_array_equal(mine(t), ref(t))


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        smoothing_spline(np.array([1.0, 2, 2, 3, 4, 5]), np.ones(6), 1.0)
    with pytest.raises(ValueError, match="at least 5"):
        smoothing_spline(np.arange(4.0), np.ones(4), 1.0)
