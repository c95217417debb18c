"""Posterior sampling of the labels with emcee (paper eq. 7-8 times a prior).

Likelihood, eq. (7-8): pixel j of a spectrum has variance ``1/ivar_j + sigma_j^2`` (``sigma_j``
the emulator's ``model_error_``), bad pixels (ivar 0) are left out, and
``ln L = -0.5 * sum_j (f_j - model_j)^2 / var_j``; the ``-0.5 * sum_j ln(2 pi var_j)`` term does
not depend on the labels and is dropped. The posterior is ``ln L + prior.log_prob(theta, star=id)``.
Without a prior, the prior is flat on the training label range widened by ``box_margin`` of its
width on each side (default 0.5: a box twice as wide as the training set), so that no walker
wanders where the emulator only extrapolates.

Sampling: ``emcee.EnsembleSampler(n_walkers, L, log_prob, vectorize=True)``, with batched
``emulator.predict`` calls (the stretch move updates the walkers in two halves, so a step is two
calls of ``n_walkers / 2`` label vectors). The walkers start in a ball around the
maximum-posterior labels found by :func:`slamfw.maximum_likelihood` (multi-start least squares,
with the same prior; a prior without a Gaussian-and-box form is replaced there by the box), of
radius ``ball`` times the formal errors, clipped inside the prior's box; every start has a finite
posterior (walkers that do not are redrawn in a smaller ball).

Per star: ``labels`` = posterior median, ``cov`` = sample covariance, ``samples`` = up to
``keep_samples`` of the post-burn-in, thinned samples (evenly spaced), and ``extra``: ``p16``,
``p84`` (label units), ``mode`` (the least-squares starting point, label units), ``acceptance``,
``tau`` (integrated autocorrelation time per label, in steps), ``chain_short`` (the post-burn-in
chain is shorter than ``min_tau_multiple`` times the largest ``tau``, or a ``tau`` is not finite: its
tau and tails are unreliable), ``n_starts_agree`` and ``at_bound`` (from the least-squares start:
``flag_bound``). ``converged`` = the start
converged, the summaries are finite, and the chain is not short. ``rmse`` and ``chi2`` are those
of the median labels; ``init`` is the best-matching training star; ``nfev`` counts spectra
emulated (least squares plus ``n_walkers * (n_steps + 1)``).

Defaults: 32 walkers x 2500 steps, 250 of them burn-in. For 3 labels the integrated
autocorrelation time is about 30-45 steps, so 2250 steps after burn-in are about 50 tau (the
emcee guideline, ``chain_short`` otherwise) and the walkers, which fill the posterior from their
small ball in about 50 steps, have forgotten it after a few tau. Measured on a 2-core machine:
2.3-2.7 s a star with SLAM trained on 300 mock stars x 601 pixels (0.4 ms per ``predict`` of 32
label vectors; emcee's own overhead is about 0.4 ms a step), 1 s with the 40-pixel reference
emulator of ``slamfw.testing``. Each star is sampled on one BLAS/OpenMP thread (threadpoolctl):
predicts of ``n_walkers / 2`` vectors only lose time to threads (SLAM's ran 8-25x slower on two);
use more executor workers to use more cores.

Determinism: each star's random numbers come from ``numpy.random.SeedSequence`` of
``random_state`` and a BLAKE2 hash of its id (when ``ids`` are given) or of its spectrum (flux at
good pixels and ivar, when they are not), so a star's result is the same to the last bit whatever
other stars share the call, however a survey is chunked and whichever executor runs it. (Two
stars with identical spectra and no ids get identical chains.)

Chains (``save_chains``): one file per star in ``chains_dir``, named by its id (characters other
than letters, digits and ``._+-`` become ``_``; ``star-<hash>`` without ids): ``npz`` holds
``chain`` (steps/thin, W, L, burn-in included), ``log_prob`` (steps/thin, W), ``label_names``,
``burn``, ``thin``; ``hdf5`` is emcee's ``HDFBackend`` (group ``mcmc``, every step, which is
slow; needs h5py). A relative ``chains_dir`` is relative to the working directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from slamfw import (
    ConfigError,
    DataError,
    InferenceModel,
    Inferer,
    LabelResult,
    LeastSquaresForm,
    Params,
    Prior,
    atomic_path,
    check_observations,
    current_executor,
    hookimpl,
    likelihood_weights,
    limit_threads,
    maximum_likelihood,
    reduced_chi2,
    rmse,
    save_npz,
)

if TYPE_CHECKING:            # emcee is imported where it samples: it takes ~0.4 s, which every
    import emcee             # process that loads the plugins would pay

SLAMFW_PLUGIN_API = (1, 6)

LogProb = Callable[[np.ndarray], np.ndarray]


class _Box(Prior):
    """Flat prior on the box ``lo <= theta <= hi`` (L,): the default when no prior is given."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)

    def least_squares_form(self, star: str | None = None) -> LeastSquaresForm:
        n = self.lo.size
        return LeastSquaresForm(np.full(n, np.nan), np.full(n, np.inf), self.lo, self.hi)


@dataclass(frozen=True)
class _Settings:
    """How each star is sampled (the inferer's parameters that the workers need)."""

    n_walkers: int
    n_steps: int
    burn: int
    thin: int
    keep_samples: int
    ball: float
    min_tau_multiple: float
    save_chains: str
    chains_dir: str | None
    label_names: tuple[str, ...]


class EmceeInferer(Inferer):
    """Posterior medians, percentiles and samples of the labels by emcee (paper eq. 7-8 x a prior).

    Each star is sampled from a ball around its least-squares solution; the stars of a call are
    spread over the executor's workers, one task each (see the module docstring)."""

    class Params(Params):
        n_walkers: int = Field(32, ge=2, description="walkers of the ensemble (at least 2 x labels)")
        n_steps: int = Field(2500, ge=2, description="steps per walker, burn-in included")
        burn: int = Field(250, ge=0, description="first steps of each walker discarded as burn-in")
        thin: int = Field(1, ge=1, description="keep every thin-th step after burn-in")
        keep_samples: int = Field(200, ge=0, description="posterior samples kept per star in the result (0: none)")
        ball: float = Field(0.1, gt=0, description="walkers start within this many formal errors of the start")
        box_margin: float = Field(0.5, ge=0, description="no prior: flat on the training range +- this "
                                                         "fraction of its width")
        min_tau_multiple: float = Field(50.0, ge=0, description="chain_short when steps after burn-in < this x tau")
        n_starts: int = Field(3, ge=1, description="least-squares start: fit from k of the best training stars")
        start_separation: float = Field(1.0, ge=0, description="least-squares start: each start at least this far "
                                                               "(standardised labels) from the others (as lm's)")
        use_model_error: bool = Field(True, description="add the emulator's model error to the variance (eq 8)")
        random_state: int = Field(0, ge=0, description="seed; each star's stream derives from it and its id")
        save_chains: Literal["none", "npz", "hdf5"] = Field("none", description="write each star's chain")
        chains_dir: str | None = Field(None, description="folder of the chain files (save_chains)")

        @model_validator(mode="after")
        def _consistent(self) -> EmceeInferer.Params:
            if self.burn + self.thin > self.n_steps:
                raise ValueError(f"burn ({self.burn}) + thin ({self.thin}) must not exceed n_steps ({self.n_steps})")
            if self.save_chains != "none" and not self.chains_dir:
                raise ValueError(f"save_chains = {self.save_chains!r} needs chains_dir")
            return self

    def infer(self, model: InferenceModel, flux: np.ndarray, ivar: np.ndarray,
              prior: Prior | None = None, ids: np.ndarray | None = None) -> LabelResult:
        """Labels of flux, ivar (N, P) on the model grid; see the module docstring."""
        emu = model.emulator
        flux, ivar = check_observations("emcee", flux, ivar, emu.n_pixels_)
        n, n_lab = flux.shape[0], len(model.label_names)
        stars = self._check_call(n, n_lab, prior, ids)
        train = np.asarray(model.train_labels, float)
        target = prior if prior is not None else _training_box(train, self.box_margin)
        start = maximum_likelihood(model, flux, ivar, prior=_start_prior(target, stars, train, self.box_margin),
                                   ids=ids, n_starts=self.n_starts, use_model_error=self.use_model_error,
                                   name="emcee", start_separation=self.start_separation)
        w = likelihood_weights(ivar, emu.model_error_ if self.use_model_error else None)
        keys = _star_keys(flux, ivar, ids)
        tasks = [(flux[i], w[i], start.labels[i], np.sqrt(np.clip(np.diagonal(start.cov[i]), 0, None)),
                  _seed_entropy(self.random_state, keys[i]), stars[i], _chain_name(ids, i, keys[i]))
                 for i in range(n)]
        per_star = current_executor().map(
            _sample_star, tasks, desc="emcee: sampling spectra", unit="spectrum",
            shared={"emulator": emu, "prior": target, "library": train, "settings": self._settings(model)})
        return self._result(model, start, per_star)

    def _check_call(self, n: int, n_lab: int, prior: Prior | None, ids: np.ndarray | None) -> list[str | None]:
        """The star ids as strings (None each without ids), or an error for an impossible call."""
        if self.n_walkers < 2 * n_lab:
            raise ConfigError(f"emcee: n_walkers ({self.n_walkers}) must be at least 2 x {n_lab} labels")
        if self.save_chains == "hdf5" and importlib.util.find_spec("h5py") is None:
            raise ConfigError("emcee: save_chains = 'hdf5' needs h5py (pip install 'slamfw[hdf5]'), or use 'npz'")
        if ids is not None and len(ids) != n:
            raise DataError(f"emcee: {len(ids)} ids for {n} spectra")
        if prior is not None and prior.per_star and ids is None:
            raise ConfigError(f"emcee: the prior {type(prior).__name__} differs from star to star and needs the "
                              "stars' ids, which were not given")
        return [None] * n if ids is None else [str(i) for i in ids]

    def _settings(self, model: InferenceModel) -> _Settings:
        return _Settings(self.n_walkers, self.n_steps, self.burn, self.thin, self.keep_samples, self.ball,
                         self.min_tau_multiple, self.save_chains, self.chains_dir, tuple(model.label_names))

    def _result(self, model: InferenceModel, start: LabelResult, per_star: list[dict[str, np.ndarray]]) -> LabelResult:
        """The catalogue of N stars from the start (LabelResult) and each star's summaries."""
        cat = {k: np.stack([s[k] for s in per_star]) for k in per_star[0]}
        labels = cat.pop("labels")
        converged = start.converged & np.isfinite(labels).all(1) & ~cat["chain_short"] & cat.pop("ok")
        extra = {"p16": cat.pop("p16"), "p84": cat.pop("p84"), "mode": start.labels,
                 "acceptance": cat.pop("acceptance"), "tau": cat.pop("tau"), "chain_short": cat.pop("chain_short"),
                 "n_starts_agree": start.extra["n_starts_agree"],
                 # flag_bound: the mode (the least-squares start, with the prior's box) on a side of the box
                 "at_bound": start.extra.get("at_bound", np.zeros(start.n, bool))}
        samples = cat.pop("samples")
        return LabelResult(
            labels=labels, cov=cat.pop("cov"), converged=converged, rmse=cat.pop("rmse"), chi2=cat.pop("chi2"),
            init=start.init,
            nfev=start.nfev + cat.pop("nfev"), samples=samples if self.keep_samples else None,
            label_names=list(model.label_names), extra=extra,
            extra_units={"p16": "label", "p84": "label", "mode": "label"})


# ---------------------------------------------------------------------------- the prior and the start

def _training_box(train: np.ndarray, margin: float) -> _Box:
    """Flat prior on the training range (M, L) widened by ``margin`` of its width on each side."""
    lo, hi = train.min(0), train.max(0)
    width = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return _Box(lo - margin * width, hi + margin * width)


def _start_prior(prior: Prior, stars: list[str | None], train: np.ndarray, margin: float) -> Prior:
    """The prior of the least-squares start: ``prior`` when it has a Gaussian-and-box form for every
    star, else the training box (the walkers are then moved into the prior's support)."""
    star_keys = [None] if not prior.per_star else list(dict.fromkeys(stars))
    if all(prior.least_squares_form(s) is not None for s in star_keys):
        return prior
    return _training_box(train, margin)


def _log_posterior(f: np.ndarray, w: np.ndarray, emulator: Any, prior: Prior, star: str | None) -> LogProb:
    """``log_prob(theta (W, L)) -> (W,)``: eq. (8) for spectrum f with weights w (P,), plus the prior;
    one ``emulator.predict`` of the walkers inside the prior's support; -inf elsewhere."""
    use = w > 0
    fu, w2 = f[use], w[use] ** 2

    def log_prob(theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        lp = np.asarray(prior.log_prob(theta, star=star), float)
        inside = np.isfinite(lp)
        if inside.all():            # the usual case: no copies
            out = lp - 0.5 * np.sum(w2 * (fu - emulator.predict(theta)[:, use]) ** 2, axis=1)
        else:
            out = np.full(theta.shape[0], -np.inf)
            if inside.any():
                resid = fu - emulator.predict(theta[inside])[:, use]
                out[inside] = lp[inside] - 0.5 * np.sum(w2 * resid ** 2, axis=1)
        return np.where(np.isfinite(out), out, -np.inf)

    return log_prob


def _initial_walkers(log_prob: LogProb, center: np.ndarray, err: np.ndarray, ball: float, n_walkers: int,
                     form: LeastSquaresForm | None, library: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray | None:
    """(W, L) starting walkers of finite posterior within ``ball`` x err (L,) of ``center`` (L,), clipped
    inside the box of ``form``; around the best library labels (M, L) when center is outside the
    prior's support; None when no start can be found."""
    scale = library.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    if not np.all(np.isfinite(center)) or not np.isfinite(log_prob(center[None]))[0]:
        lp = log_prob(library)
        if not np.isfinite(lp).any():
            return None
        center, err = library[int(np.argmax(lp))], np.full(center.shape, np.inf)
    err = np.where(np.isfinite(err) & (err > 0), err, 1e-3 * scale)
    lo, hi = (form.lo, form.hi) if form is not None else (np.full_like(center, -np.inf), np.full_like(center, np.inf))
    pad = np.where(np.isfinite(hi - lo), 1e-9 * (hi - lo), 0.0)
    walkers = np.empty((n_walkers, center.size))
    todo = np.ones(n_walkers, bool)
    radius = ball
    for _ in range(30):
        walkers[todo] = np.clip(center + radius * err * rng.standard_normal((int(todo.sum()), center.size)),
                                lo + pad, hi - pad)
        todo[todo] = ~np.isfinite(log_prob(walkers[todo]))
        if not todo.any():
            return walkers
        radius *= 0.5
    return None


# ---------------------------------------------------------------------------- seeds and names

def _star_keys(flux: np.ndarray, ivar: np.ndarray, ids: np.ndarray | None) -> list[bytes]:
    """(N,) bytes that identify each star: its id, or its spectrum (flux at good pixels, ivar)."""
    if ids is not None:
        return [b"id:" + str(i).encode() for i in ids]
    f = np.ascontiguousarray(np.where(ivar > 0, flux, 0.0))
    v = np.ascontiguousarray(ivar)
    return [b"data:" + f[i].tobytes() + v[i].tobytes() for i in range(flux.shape[0])]


def _digest(key: bytes) -> bytes:
    return hashlib.blake2b(key, digest_size=16).digest()


def _seed_entropy(random_state: int, key: bytes) -> list[int]:
    """SeedSequence entropy from the seed and a stable hash of the star's key (never ``hash()``)."""
    return [int(random_state), *(int(x) for x in np.frombuffer(_digest(key), dtype="<u4"))]


def _chain_name(ids: np.ndarray | None, i: int, key: bytes) -> str:
    """A file name stem for star i: its id made safe for a file system, or ``star-<hash>``."""
    if ids is None:
        return "star-" + _digest(key).hex()[:16]
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(ids[i])) or "_"


# ---------------------------------------------------------------------------- one star (in a worker)

def _empty_star(n_lab: int, n_keep: int) -> dict[str, np.ndarray]:
    nan = np.full(n_lab, np.nan)
    return {"labels": nan, "cov": np.full((n_lab, n_lab), np.nan), "p16": nan, "p84": nan,
            "acceptance": np.float64(np.nan), "tau": nan, "chain_short": np.bool_(True), "ok": np.bool_(False),
            "nfev": np.int64(0), "samples": np.full((n_keep, n_lab), np.nan), "rmse": np.float64(np.nan),
            "chi2": np.float64(np.nan)}


def _n_flat(s: _Settings) -> int:
    """Flat samples after burn-in and thinning (as ``get_chain(discard=burn, thin=thin)`` gives them)."""
    return len(range(s.burn + s.thin - 1, s.n_steps, s.thin)) * s.n_walkers


def _sample_star(f: np.ndarray, w: np.ndarray, center: np.ndarray, err: np.ndarray, entropy: list[int],
                 star: str | None, name: str, *, emulator: Any, prior: Prior, library: np.ndarray,
                 settings: _Settings) -> dict[str, np.ndarray]:
    """Sample one star: flux f and weights w (P,), start center and formal errors err (L,) ->
    per-star summaries (labels, cov, p16, p84, tau (L,), samples (S, L), ...). Runs on one
    BLAS/OpenMP thread: the predicts are of n_walkers / 2 vectors, where threads only cost time."""
    out = _empty_star(center.size, min(settings.keep_samples, _n_flat(settings)))
    if not (w > 0).any():
        return out
    with limit_threads(1):
        sampler = _star_sampler(f, w, center, err, entropy, star, name, emulator, prior, library, settings)
        if sampler is None:
            return out
        out.update(_summaries(sampler, settings, out["samples"].shape[0]))
        if out["ok"]:
            out.update(_fit_quality(f, w, emulator.predict(out["labels"][None])[0], center.size))
    return out


def _star_sampler(f: np.ndarray, w: np.ndarray, center: np.ndarray, err: np.ndarray, entropy: list[int],
                  star: str | None, name: str, emulator: Any, prior: Prior, library: np.ndarray,
                  settings: _Settings) -> "emcee.EnsembleSampler | None":
    """The finished sampler of one star (None: no start of finite posterior was found)."""
    ball_seq, walk_seq = np.random.SeedSequence(entropy).spawn(2)
    log_prob = _log_posterior(f, w, emulator, prior, star)
    p0 = _initial_walkers(log_prob, center, err, settings.ball, settings.n_walkers, prior.least_squares_form(star),
                          library, np.random.default_rng(ball_seq))
    if p0 is None:
        return None
    return _run(log_prob, p0, np.random.RandomState(np.random.MT19937(walk_seq)), settings, name)


def _fit_quality(f: np.ndarray, w: np.ndarray, model: np.ndarray, n_lab: int) -> dict[str, np.ndarray]:
    """rmse over good pixels and reduced chi^2 of spectrum f (P,) against model (P,); one star at a
    time, so that the numbers do not depend on the other stars of a call."""
    return {"rmse": np.float64(rmse(f[None], w[None], model[None])[0]),
            "chi2": np.float64(reduced_chi2(f[None], w[None], model[None], n_lab)[0])}


def _run(log_prob: LogProb, p0: np.ndarray, random: np.random.RandomState, s: _Settings,
         name: str) -> "emcee.EnsembleSampler":
    """Run the sampler from walkers p0 (W, L), writing the chain file when asked."""
    import emcee
    if s.save_chains == "hdf5":
        path = Path(s.chains_dir) / f"{name}.h5"
        with atomic_path(path) as tmp:
            backend = emcee.backends.HDFBackend(str(tmp), name="mcmc")
            backend.reset(s.n_walkers, p0.shape[1])
            sampler = _sample(log_prob, p0, random, s, backend)
        sampler.backend = emcee.backends.HDFBackend(str(path), name="mcmc", read_only=True)
        return sampler
    sampler = _sample(log_prob, p0, random, s, None)
    if s.save_chains == "npz":
        save_npz(Path(s.chains_dir) / f"{name}.npz", {
            "chain": sampler.get_chain(thin=s.thin), "log_prob": sampler.get_log_prob(thin=s.thin),
            "label_names": np.asarray(s.label_names, dtype=str), "burn": np.int64(s.burn), "thin": np.int64(s.thin)})
    return sampler


def _sample(log_prob: LogProb, p0: np.ndarray, random: np.random.RandomState, s: _Settings,
            backend: Any) -> "emcee.EnsembleSampler":
    import emcee
    sampler = emcee.EnsembleSampler(s.n_walkers, p0.shape[1], log_prob, vectorize=True, backend=backend)
    sampler.random_state = random.get_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sampler.run_mcmc(p0, s.n_steps, progress=False, skip_initial_state_check=True)
    return sampler


def _summaries(sampler: "emcee.EnsembleSampler", s: _Settings, n_keep: int) -> dict[str, np.ndarray]:
    """Median, covariance, percentiles, acceptance, tau, kept samples of a finished sampler."""
    import emcee
    flat = sampler.get_chain(discard=s.burn, thin=s.thin, flat=True)                       # (S_all, L)
    tau = emcee.autocorr.integrated_time(sampler.get_chain(discard=s.burn), tol=0, quiet=True)
    p16, p50, p84 = np.percentile(flat, [16.0, 50.0, 84.0], axis=0)
    keep = np.linspace(0, flat.shape[0] - 1, n_keep).round().astype(int) if n_keep else np.zeros(0, int)
    cov = np.atleast_2d(np.cov(flat, rowvar=False))
    finite = bool(np.all(np.isfinite(p50)) and np.all(np.isfinite(cov)))
    return {"labels": p50, "cov": cov, "p16": p16, "p84": p84,
            "acceptance": np.float64(np.mean(sampler.acceptance_fraction)), "tau": tau,
            # a tau that is not finite (a chain of 2 steps, a walker that never moved) measures nothing: short
            "chain_short": np.bool_(not np.all(np.isfinite(tau))
                                    or s.n_steps - s.burn < s.min_tau_multiple * np.max(tau)),
            "ok": np.bool_(finite),
            "nfev": np.int64(s.n_walkers * (s.n_steps + 1)), "samples": flat[keep]}


@hookimpl
def slamfw_register_inferers(register):
    register("emcee", EmceeInferer)
