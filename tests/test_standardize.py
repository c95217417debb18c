import numpy as np
import pytest

from slamfw import DataError, Standardizer
from slamfw.stats.standardize import pixel_namer


def test_matches_paper_eq_2_to_4(rng):
    X = rng.normal(3.0, 2.0, size=(50, 4))
    s = Standardizer().fit(X)
    np.testing.assert_allclose(s.mean_, X.mean(0))
    np.testing.assert_allclose(s.scale_, X.std(0, ddof=1))  # eq. 3: 1/(m-1)
    Z = s.transform(X)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0, ddof=1), 1)
    np.testing.assert_allclose(s.inverse_transform(Z), X)


def test_good_mask_excludes_entries(rng):
    X = rng.normal(size=(30, 2))
    good = np.ones_like(X, bool)
    X[0, 0], good[0, 0] = 1e6, False
    s = Standardizer().fit(X, good)
    np.testing.assert_allclose(s.mean_[0], X[1:, 0].mean())


def test_constant_column_names_pixel():
    X = np.ones((10, 3))
    X[:, 0] = np.arange(10)
    X[:, 2] = np.arange(10)
    with pytest.raises(DataError, match=r"pixel 1 \(4001.00 A\) is constant across the training set"):
        Standardizer(pixel_namer(np.array([4000.0, 4001.0, 4002.0]))).fit(X)


def test_state_round_trip(rng):
    X = rng.normal(size=(20, 3))
    s = Standardizer().fit(X)
    t = Standardizer.from_state(s.to_state("x_"), "x_")
    np.testing.assert_array_equal(t.transform(X), s.transform(X))
