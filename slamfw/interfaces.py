"""The component interfaces: Reader, Normalizer, Emulator, Inferer, Analyzer.

Every component is a class with a pydantic ``Params`` model. Its ``__init__`` validates the
keyword arguments against ``Params`` and stores them as attributes (scikit-learn style: no
data in constructors, fitted attributes end in ``_``). Plugins register these classes by name
through the hooks in :mod:`slamfw.hookspecs`; configs name them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError, DataError, NotFittedError
from .spectra import SpectralSet

log = logging.getLogger(__name__)


class Params(BaseModel):
    """Base for component parameter models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


def format_validation_error(err: ValidationError, prefix: str) -> str:
    """One line per problem, each with the dotted path of the offending key."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not a parameter of this component)"
        lines.append(f"{loc}: {msg}")
    return "; ".join(lines)


class Component:
    """Base of all pluggable components.

    Subclasses declare ``Params`` (a :class:`Params` subclass); ``__init__(**params)``
    validates and stores them as attributes. ``get_params()`` returns them as a dict.
    """

    Params: ClassVar[type[Params]] = Params
    #: Name under which the component was registered (set by the registry).
    registered_name: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        for key, value in self.validate_params(params).model_dump().items():
            setattr(self, key, value)

    @classmethod
    def validate_params(cls, params: dict[str, Any], prefix: str | None = None) -> Params:
        """``params`` checked by ``Params``; a :class:`ConfigError` names each bad key as ``prefix.key``."""
        try:
            return cls.Params(**params)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, prefix or cls.registered_name or cls.__name__)) from None

    def get_params(self) -> dict[str, Any]:
        """The validated parameters, JSON-able."""
        return {k: getattr(self, k) for k in self.Params.model_fields}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------- readers
class Reader(Component):
    """Reads spectra from somewhere into a :class:`SpectralSet`.

    ``Params`` should have a ``path`` field when the reader reads files; it is how the CLI's
    ``predict --data PATH`` points a model's reader at a new survey.
    """

    def read(self) -> SpectralSet:
        raise NotImplementedError


# ---------------------------------------------------------------------- normalisers
class Normalizer(Component):
    """Divides spectra by a pseudo-continuum.

    Subclasses implement :meth:`normalize_one` (one star) or override :meth:`normalize`
    (vectorised over stars).
    """

    def normalize(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalise N spectra.

        Parameters
        ----------
        wave : (P,) or (N, P) wavelengths (per star when rest-frame shifts differ)
        flux, ivar : (N, P)

        Returns
        -------
        norm_flux, norm_ivar, continuum : (N, P) each; ``norm_ivar = ivar * continuum**2``.
        """
        flux = np.atleast_2d(flux)
        ivar = np.atleast_2d(ivar)
        wave = np.broadcast_to(wave, flux.shape)
        out = [self.normalize_one(wave[i], flux[i], ivar[i]) for i in range(flux.shape[0])]
        if not out:
            return flux.copy(), ivar.copy(), np.ones_like(flux)
        nf, ni, cont = (np.array(a) for a in zip(*out))
        return nf, ni, cont

    def normalize_one(self, wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError


# ---------------------------------------------------------------------- emulators
class Emulator(Component):
    """Labels in, normalised flux out: the generative model of the spectra.

    Contract
    --------
    - ``fit(labels (M, L), flux (M, P), ivar (M, P)) -> self`` (ivar 0 marks a bad pixel)
    - ``predict(labels (K, L)) -> flux (K, P)``, vectorised over K
    - ``jacobian(labels (K, L)) -> (K, P, L)``: d flux / d label in physical units; this base
      class gives a central finite-difference fallback
    - ``model_error_ (P,)``: per-pixel model scatter in flux units (finite, > 0), used in the
      likelihood
    - ``to_state() -> (arrays, metadata)`` and ``from_state(arrays, metadata)`` for safe saving;
      ``from_state`` finds the constructor parameters in ``metadata["params"]``
    - ``random_state``: emulators that draw random numbers take it as a parameter, and equal
      parameters on equal data give identical models
    - optional, for method comparison (paper Fig. 2): ``cv_mse_`` and ``cv_md_`` (P,), the
      cross-validated mean squared and mean difference (predicted - true) of each pixel in
      standardised flux units (eq. 5-6), and ``cv_scheme_`` (e.g. ``"5-fold"``) saying how they
      were measured. Emulators without them are cross-validated by ``slamfw compare`` itself.

    Fitted attributes end in ``_``; ``n_labels_`` and ``n_pixels_`` are always set by ``fit``.
    ``slamfw.testing.check_emulator`` checks this contract.
    """

    #: Relative finite-difference step (times the training label scale) for the fallback jacobian.
    fd_step: ClassVar[float] = 1e-3
    #: A directory the pipeline lends for resumable training (None: keep nothing). Emulators whose
    #: training is long may save finished pieces there and reuse them when ``fit`` is rerun on
    #: the same data and parameters; it is not a parameter and is never saved with the model.
    workdir: Any = None

    def fit(self, labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray) -> "Emulator":
        raise NotImplementedError

    def predict(self, labels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def jacobian(self, labels: np.ndarray) -> np.ndarray:
        """(K, P, L) derivatives by central differences (override with an analytic one)."""
        theta = self._check_labels(labels)
        scale = getattr(self, "label_scale_", np.ones(theta.shape[1]))
        k, n_lab = theta.shape
        jac = np.empty((k, self.n_pixels_, n_lab))
        for l_ in range(n_lab):
            h = self.fd_step * scale[l_]
            up, dn = theta.copy(), theta.copy()
            up[:, l_] += h
            dn[:, l_] -= h
            jac[:, :, l_] = (self.predict(up) - self.predict(dn)) / (2 * h)
        return jac

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> "Emulator":
        raise NotImplementedError

    # -- helpers every emulator can use
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_labels_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load a model")

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        """Validate labels for predict/jacobian: (K, L) finite floats."""
        self._check_fitted()
        theta = np.asarray(labels, dtype=float)
        if theta.ndim == 1:
            theta = theta[None, :]
        if theta.ndim != 2 or theta.shape[1] != self.n_labels_:
            raise DataError(f"{type(self).__name__} expects labels of shape (K, {self.n_labels_}), "
                            f"got {np.shape(labels)}")
        if not np.all(np.isfinite(theta)):
            k = int(np.argwhere(~np.isfinite(theta))[0, 0])
            raise DataError(f"label vector {k} is not finite: {theta[k].tolist()}")
        return theta


def check_training_data(labels: np.ndarray, flux: np.ndarray, ivar: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert ``fit`` inputs; errors name the star and the problem."""
    labels = np.atleast_2d(np.asarray(labels, dtype=float))
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    ivar = np.atleast_2d(np.asarray(ivar, dtype=float))
    m = labels.shape[0]
    if flux.shape[0] != m or ivar.shape != flux.shape:
        raise DataError(f"training shapes disagree: labels {labels.shape}, flux {flux.shape}, ivar {ivar.shape}")
    if m < 2:
        raise DataError(f"need at least 2 training stars, got {m}")
    if not np.all(np.isfinite(labels)):
        i = int(np.argwhere(~np.isfinite(labels))[0, 0])
        raise DataError(f"training star {i} has a non-finite label: {labels[i].tolist()}")
    if np.any(~np.isfinite(ivar) | (ivar < 0)):
        i = int(np.argwhere(~np.isfinite(ivar) | (ivar < 0))[0, 0])
        raise DataError(f"training star {i} has ivar < 0 or not finite")
    bad = ~np.isfinite(flux) & (ivar > 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"training star {i} has non-finite flux at pixel {j} with ivar > 0")
    return labels, np.where(np.isfinite(flux), flux, 0.0), ivar


# ---------------------------------------------------------------------- inference
class InferenceModel(Protocol):
    """What an inferer needs from a trained model (a :class:`slamfw.model.SlamfwModel` has it)."""

    emulator: Emulator
    train_labels: np.ndarray  # (M, L) physical units, the initial-guess library
    label_names: list[str]


@dataclass
class TrainedEmulator:
    """The minimal :class:`InferenceModel`: a fitted emulator and its (M, L) training labels."""

    emulator: Emulator
    train_labels: np.ndarray
    label_names: list[str]


@dataclass
class LabelResult:
    """Labels inferred for N spectra.

    labels, init : (N, L) physical units (the solution and the initial guess)
    cov : (N, L, L) covariance in physical units; ``errors`` is sqrt of its diagonal
    converged : (N,) bool
    rmse : (N,) root-mean-square of observed - model flux over good pixels
    chi2 : (N,) reduced chi^2 over good pixels (likelihood weights)
    nfev : (N,) function evaluations
    samples : optional (N, S, L) posterior samples (MCMC inferers)
    """

    labels: np.ndarray
    cov: np.ndarray
    converged: np.ndarray
    rmse: np.ndarray
    chi2: np.ndarray
    init: np.ndarray
    label_names: list[str]
    nfev: np.ndarray | None = None
    samples: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def errors(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diagonal(self.cov, axis1=1, axis2=2), 0, None))

    @property
    def n(self) -> int:
        return self.labels.shape[0]

    ARRAYS: ClassVar[tuple[str, ...]] = ("labels", "cov", "converged", "rmse", "chi2", "init", "nfev")

    @classmethod
    def concatenate(cls, parts: Sequence["LabelResult"]) -> "LabelResult":
        first = parts[0]
        kw = {k: np.concatenate([getattr(p, k) for p in parts]) for k in cls.ARRAYS
              if getattr(first, k) is not None}
        if first.samples is not None:
            kw["samples"] = np.concatenate([p.samples for p in parts])
        return cls(label_names=list(first.label_names), **kw)


class Prior(Protocol):
    """A prior on physical labels: ``log_prob(theta (L,)) -> float``.

    Gaussian priors also expose ``mean`` and ``sigma`` ((L,), NaN/inf for no prior on a label),
    which least-squares inferers turn into extra residuals.
    """

    def log_prob(self, theta: np.ndarray) -> float: ...


class Inferer(Component):
    """Finds labels for many spectra: ``infer(model, flux, ivar, prior=None) -> LabelResult``.

    ``flux`` and ``ivar`` are (N, P) on the model's wavelength grid, normalised like the
    training set; ivar 0 marks bad pixels.
    """

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None) -> LabelResult:
        raise NotImplementedError


# ---------------------------------------------------------------------- analyzers
@dataclass
class AnalysisContext:
    """Whatever a run made, for analyzers to read.

    ``test`` is the prepared test set (true labels in ``test.labels`` when known),
    ``result`` the inferred labels for its stars in the same order.
    """

    label_names: list[str]
    label_units: list[str]
    model: Any = None
    test: SpectralSet | None = None
    result: LabelResult | None = None
    train: SpectralSet | None = None
    output_dir: Any = None


@dataclass
class Report:
    """What an analyzer returns: named astropy tables, numbers, notes and figure paths."""

    title: str
    tables: dict[str, Any] = field(default_factory=dict)   # name -> astropy Table
    numbers: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [f"## {self.title}", ""]
        out += [f"{n}" for n in self.notes] + ([""] if self.notes else [])
        for key, val in self.numbers.items():
            out.append(f"- {key}: {val:.6g}")
        if self.numbers:
            out.append("")
        for name, table in self.tables.items():
            out += [f"### {name}", "", table_to_markdown(table), ""]
        for fig in self.figures:
            out += [f"![{fig}]({fig})", ""]
        return "\n".join(out)


def table_to_markdown(table: Any) -> str:
    """An astropy Table as a GitHub-flavoured markdown table."""
    cols = table.colnames
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    rows = []
    for row in table:
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                cells.append(f"{v:.4g}")
            else:
                cells.append(str(v))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


class Analyzer(Component):
    """Turns a run's products into a :class:`Report`: ``analyze(ctx) -> Report``."""

    def analyze(self, ctx: AnalysisContext) -> Report:
        raise NotImplementedError


KINDS: dict[str, type[Component]] = {
    "reader": Reader,
    "normalizer": Normalizer,
    "emulator": Emulator,
    "inferer": Inferer,
    "analyzer": Analyzer,
}
