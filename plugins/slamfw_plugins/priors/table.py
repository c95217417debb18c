"""Prior ``table``: per-star Gaussian priors from catalogue columns joined by star id.

For example a photometric Teff or an asteroseismic log g: ``columns = {Teff = ["teff_phot",
"e_teff_phot"]}`` puts a Gaussian of that mean and sigma on each star's Teff. The table is anything
astropy's ``Table.read`` reads (FITS, ECSV, CSV, ...); ids are compared as strings (an integer
column's 123 matches the star id ``"123"``). A star the table does not list, or one whose mean or
sigma is masked, NaN, infinite or (sigma) not positive, gets no prior on that label
(``missing = "flat"``) or an error naming the star (``missing = "error"``). ``star=None`` is
treated as a star the table does not list.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from slamfw import (
    ConfigError,
    DataError,
    InputPath,
    LeastSquaresForm,
    NotFittedError,
    Params,
    Prior,
    hookimpl,
)

SLAMFW_PLUGIN_API = (1, 1)

_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits", ".fits.gz": "fits",
            ".fit.gz": "fits", ".txt": "ascii", ".dat": "ascii"}


def _read_table(path: str) -> Any:
    """The astropy Table in ``path``, or a DataError naming the file."""
    from astropy.table import Table
    p = Path(path)
    if not p.is_file():
        raise DataError(f"table prior: file {path!r} does not exist")
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
    try:
        return Table.read(p, format=_FORMATS.get(suffix))
    except Exception as err:  # noqa: BLE001 - any reader failure is a problem with the file
        raise DataError(f"table prior: cannot read {path!r}: {type(err).__name__}: {err}") from None


def _has_column(table: Any, name: str, key: str, path: str) -> None:
    if name not in table.colnames:
        raise ConfigError(f"table prior: {key}: {path!r} has no column {name!r} "
                          f"(its columns: {', '.join(table.colnames)})")


def _star_ids(table: Any, column: str, path: str) -> list[str]:
    """(S,) ids as stripped strings; a DataError for a missing or duplicated id."""
    _has_column(table, column, "id_column", path)
    col = table[column]
    mask = np.ma.getmaskarray(np.ma.asanyarray(col))
    if mask.any():
        raise DataError(f"table prior: {path!r}: row {int(np.flatnonzero(mask)[0])} has no {column!r}")
    ids = [str(v).strip() for v in np.asarray(col).astype(str)]
    dup = [i for i, n in Counter(ids).items() if n > 1]
    if dup:
        raise DataError(f"table prior: {path!r}: the id {dup[0]!r} appears more than once in column {column!r}")
    return ids


def _numbers(table: Any, name: str, key: str, path: str) -> np.ndarray:
    """(S,) float values of column ``name``, NaN where masked."""
    _has_column(table, name, key, path)
    try:
        values = np.ma.filled(np.ma.asanyarray(table[name]).astype(float), np.nan)
    except (TypeError, ValueError):
        raise DataError(f"table prior: {path!r}: column {name!r} ({key}) is not numeric") from None
    if values.ndim != 1:
        raise DataError(f"table prior: {path!r}: column {name!r} ({key}) has {values.ndim} dimensions, not 1")
    return np.asarray(values, dtype=float)


class TablePrior(Prior):
    """Per-star Gaussian priors (a photometric Teff, an asteroseismic log g) from a catalogue, by star id."""

    per_star = True

    class Params(Params):
        path: InputPath = Field(..., description="the catalogue: any table astropy reads (FITS, ECSV, CSV, ...)")
        id_column: str = Field("id", description="the column of star ids (compared as strings)")
        columns: dict[str, tuple[str, str]] = Field(default_factory=dict,
                                                    description="label name -> [mean column, sigma column]")
        missing: Literal["flat", "error"] = Field(
            "flat", description="a star not in the table, or without a usable mean and sigma: "
                                "no prior on that label (flat), or an error")

    def fit(self, train_labels: np.ndarray, label_names: Sequence[str]) -> TablePrior:
        """Reads the table. Sets ``stars_`` (S,) ids, ``mean_`` and ``sigma_`` (S, L) (NaN and inf
        where a star has no usable prior on a label) and ``usable_`` (S, L). ``train_labels`` (M, L)
        are not used."""
        super().fit(train_labels, label_names)
        for key in self.columns:
            if key not in self.label_names_:
                raise ConfigError(f"table prior: columns.{key}: no such label "
                                  f"(the labels are {', '.join(self.label_names_)})")
        table = _read_table(self.path)
        self.stars_ = _star_ids(table, self.id_column, self.path)
        self.row_ = {star: i for i, star in enumerate(self.stars_)}
        shape = (len(self.stars_), self.n_labels_)
        mean, sigma = np.full(shape, np.nan), np.full(shape, np.inf)
        for key, (mean_col, sigma_col) in self.columns.items():
            j = self.label_names_.index(key)
            mean[:, j] = _numbers(table, mean_col, f"columns.{key}", self.path)
            sigma[:, j] = _numbers(table, sigma_col, f"columns.{key}", self.path)
        self.usable_ = np.isfinite(mean) & np.isfinite(sigma) & (sigma > 0)
        self.mean_ = np.where(self.usable_, mean, np.nan)
        self.sigma_ = np.where(self.usable_, sigma, np.inf)
        return self

    def _star_row(self, star: str | None) -> tuple[np.ndarray, np.ndarray]:
        """mean, sigma (L,) of ``star`` (NaN, inf: no prior on that label)."""
        if not hasattr(self, "row_"):
            raise NotFittedError("TablePrior is not fitted: call fit(train_labels, label_names) first")
        i = None if star is None else self.row_.get(str(star).strip())
        if i is None:
            if self.missing == "error":
                raise DataError(f"table prior: {'no star id given' if star is None else f'star {star!r}'}: "
                                f"not in {self.path!r} (column {self.id_column!r}); set missing = 'flat' "
                                "to give such stars no prior")
            return np.full(self.n_labels_, np.nan), np.full(self.n_labels_, np.inf)
        named = [self.label_names_.index(k) for k in self.columns]
        bad = [self.label_names_[j] for j in named if not self.usable_[i, j]]
        if bad and self.missing == "error":
            raise DataError(f"table prior: star {star!r} has no usable mean and sigma (> 0) for {', '.join(bad)} "
                            f"in {self.path!r}; set missing = 'flat' to give it no prior there")
        return self.mean_[i].copy(), self.sigma_[i].copy()

    def least_squares_form(self, star: str | None = None) -> LeastSquaresForm:
        """This star's Gaussians, (L,) arrays; the box is open."""
        mean, sigma = self._star_row(star)
        return LeastSquaresForm(mean=mean, sigma=sigma, lo=np.full(self.n_labels_, -np.inf),
                                hi=np.full(self.n_labels_, np.inf))

    def log_prob(self, theta: np.ndarray, star: str | None = None) -> np.ndarray:
        """(W,) log density (up to a constant) of theta (W, L) for ``star``."""
        form = self.least_squares_form(star)
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.ndim != 2 or theta.shape[1] != self.n_labels_:
            raise DataError(f"TablePrior: theta has shape {theta.shape}, expected (W, {self.n_labels_})")
        return form.log_prob(theta) + 0.0


@hookimpl
def slamfw_register_priors(register):
    register("table", TablePrior)
