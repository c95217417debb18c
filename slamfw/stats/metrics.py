"""Label accuracy measures shared by analyzers and ``slamfw compare`` (paper eq. 9-10).

``bias_scatter``: eq. 9 (bias) and eq. 10 read as a standard deviation (its printed 1/m outside
the root is a typo). ``robust_scatter``: the median absolute deviation scaled to a Gaussian's
standard deviation (1.4826 x MAD, scipy's ``median_abs_deviation(scale="normal")``), because the
literature labels of real libraries carry a few gross errors that dominate a standard deviation.
"""
from __future__ import annotations

from collections.abc import Sequence
import re
from dataclasses import dataclass

import numpy as np


def bias_scatter(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-label bias (eq. 9) and scatter (eq. 10 as a standard deviation) of (N, L) arrays."""
    diff = pred - true
    return diff.mean(axis=0), diff.std(axis=0)


def robust_scatter(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-label 1.4826 x median absolute deviation of the differences (N, L) -> (L,)."""
    from scipy.stats import median_abs_deviation   # imported here: scipy.stats costs 0.3 s of every start-up
    return median_abs_deviation(pred - true, axis=0, scale="normal")


def snr_bins(snr: np.ndarray, edges: list[float] | None, max_distinct: int = 8) -> list[tuple[str, np.ndarray]]:
    """(label, mask) per S/N bin: given edges, or each distinct value when there are few."""
    finite = np.isfinite(snr)
    if not finite.any():
        return []
    if edges is None:
        values = np.unique(snr[finite])
        if values.size <= max_distinct:
            return [(f"{v:g}", snr == v) for v in values] if values.size > 1 else []
        edges = list(np.quantile(snr[finite], np.linspace(0, 1, 6)))
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        last = hi == edges[-1]
        sel = finite & (snr >= lo) & ((snr <= hi) if last else (snr < hi))
        out.append((f"{lo:.3g}-{hi:.3g}", sel))
    return out


@dataclass
class BinAccuracy:
    """Label accuracy over one group of stars: ``bias``, ``scatter``, ``robust`` are (L,)."""

    name: str
    n: int
    bias: np.ndarray
    scatter: np.ndarray
    robust: np.ndarray


def accuracy_by_snr(pred: np.ndarray, true: np.ndarray, use: np.ndarray, snr: np.ndarray,
                    edges: list[float] | None = None) -> list[BinAccuracy]:
    """Bias, scatter and robust scatter of pred - true (N, L) over the ``use`` (N,) stars, for all
    of them (``"all"``) and per S/N bin (see :func:`snr_bins`); groups of fewer than 2 are left out."""
    groups = [("all", np.ones(use.size, bool))] + snr_bins(snr, edges)
    out = []
    for name, sel in groups:
        s = sel & use
        if s.sum() < 2:
            continue
        bias, scatter = bias_scatter(pred[s], true[s])
        out.append(BinAccuracy(name, int(s.sum()), bias, scatter, robust_scatter(pred[s], true[s])))
    return out


#: The scales of the label distance D (paper eq. 11, after Ho et al. 2017a), by :func:`label_key`.
LABEL_DISTANCE_SCALES = {"teff": 100.0, "logg": 0.2, "feh": 0.1, "mh": 0.1}


def label_key(name: str) -> str:
    """A label's name as the label distance looks its scale up: lower case, letters and digits only
    (``"[Fe/H]"`` -> ``"feh"``, ``"log g"`` -> ``"logg"``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def label_distance(pred: np.ndarray, ref: np.ndarray, label_names: Sequence[str],
                   scales: dict[str, float] | None = None) -> np.ndarray:
    """(N,) the label distance D of eq. 11: ``sum_l ((pred_l - ref_l) / scale_l)^2`` over the labels
    that have a scale (``scales`` by label name, else :data:`LABEL_DISTANCE_SCALES` by the name in
    lower case, letters and digits only, so ``log g`` and ``[Fe/H]`` find theirs: Teff 100 K,
    log g 0.2 dex, [Fe/H] or [M/H] 0.1 dex). pred, ref (N, L). NaN where a used
    label is NaN; a ValueError when no label has a scale."""
    scales = scales or {}
    use = [(j, scales.get(n, LABEL_DISTANCE_SCALES.get(label_key(n)))) for j, n in enumerate(label_names)]
    use = [(j, s) for j, s in use if s is not None]
    if not use:
        raise ValueError(f"label distance: no scale for any of the labels {list(label_names)}; give scales")
    cols, sc = [j for j, _ in use], np.array([s for _, s in use], float)
    return np.sum(((np.asarray(pred, float)[:, cols] - np.asarray(ref, float)[:, cols]) / sc) ** 2, axis=1)
