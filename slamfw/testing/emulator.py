"""The emulator conformance kit: ``check_emulator`` (in the spirit of scikit-learn's ``check_estimator``).

It fits the emulator on small generated spectra and checks the contract every emulator keeps
(see :class:`slamfw.Emulator`), so that any of them can go under the same inferer, be saved,
loaded and compared::

    from slamfw.testing import check_emulator
    check_emulator(MyEmulator)                      # raises EmulatorCheckError listing failures
    results = check_emulator(MyEmulator(order=2), raise_on_fail=False)
    for r in results:
        print(r.name, r.passed, r.message)

From the command line: ``slamfw check-emulator NAME [--param key=value ...]``.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import NotFittedError, SlamfwError
from ..components.emulator import Emulator


@dataclass
class CheckResult:
    """The outcome of one check: its name, whether it passed, and why not (or a note)."""

    name: str
    passed: bool
    message: str = ""


class EmulatorCheckError(AssertionError):
    """Raised by :func:`check_emulator` when checks fail; ``results`` holds all outcomes."""

    def __init__(self, message: str, results: list[CheckResult]):
        super().__init__(message)
        self.results = results


def make_check_data(n_stars: int = 60, n_pixels: int = 20, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small smooth training data: labels (M, 3) like Teff/logg/[Fe/H], flux and ivar (M, P).

    Each pixel is an absorption line whose depth depends smoothly and non-linearly on the
    labels, plus Gaussian noise of 0.004 (S/N 250).
    """
    rng = np.random.default_rng(seed)
    labels = np.column_stack([rng.uniform(4000, 7000, n_stars), rng.uniform(1.0, 5.0, n_stars),
                              rng.uniform(-2.0, 0.5, n_stars)])
    z = (labels - labels.mean(0)) / labels.std(0)
    a = rng.normal(size=(3, n_pixels))
    depth = 0.4 / (1.0 + np.exp(-(z @ a + 0.3 * (z[:, :1] ** 2) @ a[:1])))
    sigma = 0.004
    flux = 1.0 - depth + rng.normal(0, sigma, depth.shape)
    return labels, flux, np.full_like(flux, 1.0 / sigma ** 2)


def _raises(fn: Callable[[], Any], expected: type[BaseException] = SlamfwError) -> str:
    """'' if fn raises ``expected`` with a message, else what went wrong."""
    try:
        fn()
    except expected as err:
        return "" if str(err).strip() else f"raised {type(err).__name__} without a message"
    except Exception as err:  # noqa: BLE001 - reported, not hidden
        return f"raised {type(err).__name__}: {err} instead of a {expected.__name__}"
    return f"did not raise (expected a {expected.__name__})"


def _check_state_roundtrip(emu: Emulator, factory_cls: type[Emulator], theta: np.ndarray) -> str:
    arrays, meta = emu.to_state()
    bad = [k for k, v in arrays.items() if np.asarray(v).dtype == object]
    if bad:
        return f"to_state arrays of dtype object (would need pickle): {bad}"
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        loaded_arrays = {k: z[k] for k in z.files}
    try:
        meta_text = json.dumps({"params": emu.get_params(), **meta})
    except TypeError as err:
        return f"params or to_state metadata are not JSON-able: {err}"
    other = factory_cls.from_state(loaded_arrays, json.loads(meta_text))
    for what, a, b in (("predict", emu.predict(theta), other.predict(theta)),
                       ("jacobian", emu.jacobian(theta), other.jacobian(theta)),
                       ("model_error_", emu.model_error_, other.model_error_)):
        if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-12, atol=1e-14):
            return f"{what} differs after to_state -> file -> from_state"
    return ""


def check_emulator(emulator: type[Emulator] | Emulator, params: dict[str, Any] | None = None, *,
                   raise_on_fail: bool = True, n_stars: int = 60, n_pixels: int = 20
                   ) -> list[CheckResult]:
    """Run the emulator contract checks; return one :class:`CheckResult` per check.

    Parameters
    ----------
    emulator : an :class:`~slamfw.Emulator` subclass (built with ``params``) or an unfitted
        instance (its ``get_params()`` are used for every fresh copy the checks need).
    raise_on_fail : raise :class:`EmulatorCheckError` naming the failed checks.
    n_stars, n_pixels : size of the generated training set.
    """
    cls = emulator if isinstance(emulator, type) else type(emulator)
    if not (isinstance(cls, type) and issubclass(cls, Emulator)):
        raise TypeError(f"check_emulator needs an Emulator subclass or instance, got {emulator!r}")
    base_params = dict(params or {}) if isinstance(emulator, type) else emulator.get_params()
    labels, flux, ivar = make_check_data(n_stars, n_pixels)
    m, p = flux.shape
    n_lab = labels.shape[1]
    theta = labels[:7] * np.array([1.01, 0.97, 1.0]) + np.array([0.0, 0.05, 0.02])
    results: list[CheckResult] = []
    state: dict[str, Any] = {}

    def fresh() -> Emulator:
        return cls(**base_params)

    def run(name: str, fn: Callable[[], str | None], needs_fit: bool = True) -> None:
        if needs_fit and "fitted" not in state:
            results.append(CheckResult(name, False, "not run: fit failed"))
            return
        try:
            msg = fn() or ""
        except Exception as err:  # noqa: BLE001 - every failure becomes a report line
            msg = f"{type(err).__name__}: {err}"
        passed = not msg or msg.startswith("note:")
        results.append(CheckResult(name, passed, msg.removeprefix("note: ")))

    def check_params() -> str:
        emu = fresh()
        got = emu.get_params()
        if not isinstance(got, dict):
            return "get_params() is not a dict"
        json.dumps(got)
        again = cls(**got).get_params()
        return "" if again == got else f"cls(**get_params()) has other params: {again} != {got}"

    def check_unfitted() -> str:
        return _raises(lambda: fresh().predict(labels[:2]), NotFittedError)

    def check_fit() -> str:
        before = (labels.copy(), flux.copy(), ivar.copy())
        emu = fresh()
        out = emu.fit(labels, flux, ivar)
        if out is not emu:
            return "fit() must return self"
        if not all(np.array_equal(a, b) for a, b in zip(before, (labels, flux, ivar))):
            return "fit() modified its input arrays"
        if getattr(emu, "n_labels_", None) != n_lab or getattr(emu, "n_pixels_", None) != p:
            return f"n_labels_/n_pixels_ are {getattr(emu, 'n_labels_', None)}/{getattr(emu, 'n_pixels_', None)}, " \
                   f"expected {n_lab}/{p}"
        state["fitted"] = emu
        return ""

    def check_predict_shape() -> str:
        emu = state["fitted"]
        out = np.asarray(emu.predict(theta))
        if out.shape != (theta.shape[0], p):
            return f"predict((K, L)) returned shape {out.shape}, expected {(theta.shape[0], p)}"
        if not np.all(np.isfinite(out)):
            return "predict returned non-finite flux"
        one = np.asarray(emu.predict(theta[0]))
        if one.shape != (1, p):
            return f"predict((L,)) returned shape {one.shape}, expected (1, {p})"
        return ""

    def check_vectorised() -> str:
        emu = state["fitted"]
        many = emu.predict(theta)
        single = np.vstack([emu.predict(t[None]) for t in theta])
        if not np.allclose(many, single, rtol=1e-10, atol=1e-12):
            return f"predict on {len(theta)} label vectors differs from one at a time by " \
                   f"{np.max(np.abs(many - single)):.3g}"
        return ""

    def check_learns() -> str:
        emu = state["fitted"]
        resid = emu.predict(labels) - flux
        ratio = np.median(np.mean(resid ** 2, axis=0) / np.var(flux, axis=0))
        if not ratio < 0.5:
            return f"the fit reproduces the training flux poorly: median MSE / variance = {ratio:.3g} (>= 0.5)"
        return f"note: median training MSE / variance = {ratio:.3g}"

    def check_deterministic() -> str:
        a = state["fitted"].predict(theta)
        b = fresh().fit(labels, flux, ivar).predict(theta)
        if not np.allclose(a, b, rtol=1e-10, atol=1e-12):
            return f"two fits with the same parameters differ by {np.max(np.abs(a - b)):.3g}"
        return ""

    def check_jacobian() -> str:
        emu = state["fitted"]
        jac = np.asarray(emu.jacobian(theta))
        if jac.shape != (theta.shape[0], p, n_lab):
            return f"jacobian returned shape {jac.shape}, expected {(theta.shape[0], p, n_lab)}"
        fd = np.empty_like(jac)
        steps = 1e-4 * labels.std(0)
        for k in range(n_lab):
            up, dn = theta.copy(), theta.copy()
            up[:, k] += steps[k]
            dn[:, k] -= steps[k]
            fd[:, :, k] = (emu.predict(up) - emu.predict(dn)) / (2 * steps[k])
        # compare in units of the flux change over one label standard deviation
        err = np.max(np.abs(jac - fd) * labels.std(0)) / max(np.max(np.abs(fd) * labels.std(0)), 1e-12)
        if not err < 1e-3:
            return f"jacobian differs from central finite differences by {err:.3g} (relative)"
        return f"note: relative difference from central finite differences {err:.1e}"

    def check_model_error() -> str:
        err = np.asarray(getattr(state["fitted"], "model_error_", None), dtype=float)
        if err.shape != (p,):
            return f"model_error_ has shape {err.shape}, expected ({p},)"
        if not (np.all(np.isfinite(err)) and np.all(err > 0)):
            return "model_error_ must be finite and > 0 at every pixel"
        return ""

    def check_cv_attributes() -> str:
        emu = state["fitted"]
        if not hasattr(emu, "cv_mse_"):
            return "note: no cv_mse_/cv_md_ (slamfw compare will cross-validate by refitting)"
        mse, md = np.asarray(emu.cv_mse_, float), np.asarray(getattr(emu, "cv_md_", np.nan), float)
        if mse.shape != (p,) or md.shape != (p,):
            return f"cv_mse_/cv_md_ have shapes {mse.shape}/{md.shape}, expected ({p},)"
        if not (np.all(np.isfinite(mse)) and np.all(mse >= 0) and np.all(np.isfinite(md))):
            return "cv_mse_ must be finite and >= 0, cv_md_ finite"
        if not isinstance(getattr(emu, "cv_scheme_", None), str):
            return "cv_scheme_ (a string such as '5-fold') is missing"
        return ""

    def check_save_load() -> str:
        return _check_state_roundtrip(state["fitted"], cls, theta)

    def check_bad_labels() -> str:
        emu = state["fitted"]
        nan = theta.copy()
        nan[1, 0] = np.nan
        for what, fn in (("predict with L+1 labels", lambda: emu.predict(np.hstack([theta, theta[:, :1]]))),
                         ("predict with NaN labels", lambda: emu.predict(nan)),
                         ("jacobian with L-1 labels", lambda: emu.jacobian(theta[:, :-1])),
                         ("jacobian with NaN labels", lambda: emu.jacobian(nan))):
            msg = _raises(fn)
            if msg:
                return f"{what}: {msg}"
        return ""

    def check_bad_training_data() -> str:
        bad = labels.copy()
        bad[4, 1] = np.nan
        for what, fn in (("NaN training label", lambda: fresh().fit(bad, flux, ivar)),
                         ("flux with fewer stars than labels", lambda: fresh().fit(labels, flux[:-1], ivar[:-1]))):
            msg = _raises(fn)
            if msg:
                return f"fit with {what}: {msg}"
        return ""

    def check_masked_pixels() -> str:
        f2, i2 = flux.copy(), ivar.copy()
        rows = np.arange(0, m, 7)
        f2[rows, 3] = np.nan
        i2[rows, 3] = 0.0
        i2[5, :4] = 0.0
        out = fresh().fit(labels, f2, i2).predict(theta)
        if not np.all(np.isfinite(out)):
            return "fit on spectra with masked pixels (ivar 0, NaN flux) gives non-finite predictions"
        return ""

    run("parameters round-trip through get_params()", check_params, needs_fit=False)
    run("unfitted use raises NotFittedError", check_unfitted, needs_fit=False)
    run("fit returns self and sets n_labels_, n_pixels_", check_fit, needs_fit=False)
    run("predict output shape and finiteness", check_predict_shape)
    run("predict vectorised equals one at a time", check_vectorised)
    run("fit reproduces the training spectra", check_learns)
    run("deterministic given its parameters (seed)", check_deterministic)
    run("jacobian matches central finite differences", check_jacobian)
    run("model_error_ shape and positivity", check_model_error)
    run("cv_mse_/cv_md_/cv_scheme_ (optional)", check_cv_attributes)
    run("save -> load gives identical predictions", check_save_load)
    run("clear errors on wrong label count / NaN labels", check_bad_labels)
    run("clear errors on bad training data", check_bad_training_data, needs_fit=False)
    run("masked training pixels (ivar 0) are tolerated", check_masked_pixels, needs_fit=False)
    failed = [r for r in results if not r.passed]
    if failed and raise_on_fail:
        lines = "\n".join(f"  - {r.name}: {r.message}" for r in failed)
        raise EmulatorCheckError(f"{cls.__name__} fails {len(failed)} of {len(results)} conformance checks:\n{lines}",
                                 results)
    return results
