import numpy as np

from slamfw import registry
from slamfw.workflows.cleaning import clean_training_set


def test_cleaning_drops_stars_with_wrong_labels(small_train):
    bad = small_train.subset(np.arange(small_train.n_stars))
    bad.labels = bad.labels.copy()
    wrong = [5, 17, 42]
    bad.labels[wrong, 0] += 2500.0  # Teff off by 2500 K: mislabelled training stars
    emu = registry.create("emulator", "slam", dict(C=[10.0], gamma=[0.3], n_folds=3))
    inferer = registry.create("inferer", "lm", {})
    keep, predicted = clean_training_set(emu, inferer, bad, folds=5, nsigma=4.0, seed=0)
    assert not keep[wrong].any()
    assert keep.sum() >= bad.n_stars - 8
    assert np.isfinite(predicted).all(axis=1).mean() > 0.9
