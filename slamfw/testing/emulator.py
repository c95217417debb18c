"""The emulator conformance kit: ``check_emulator`` (in the spirit of scikit-learn's ``check_estimator``).

It fits the emulator on small generated spectra (:func:`~slamfw.testing.make_check_data`: labels
(M, 3), flux and ivar (M, P)) and checks the contract every emulator keeps (see
:class:`slamfw.Emulator`), so that any of them can go under the same inferer, be saved, loaded
and compared::

    from slamfw.testing import check_emulator
    check_emulator(MyEmulator)                      # raises EmulatorCheckError listing failures
    results = check_emulator(MyEmulator(order=2), raise_on_fail=False)
    for r in results:
        print(r.check, r.name, r.passed, r.message)

Each check is also a module-level function, ``check_jacobian(MyEmulator(order=2))``; the list
is :data:`EMULATOR_CHECKS`. From the command line: ``slamfw check-emulator NAME [--param key=value ...]``.
"""
from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..components.emulator import Emulator
from ..errors import NotFittedError
from ..stats.batched_lm import declares
from ._common import (
    Case, CheckResult, ComponentCheckError, EmulatorCheckError, NotRun, checker, params_check, raises, resolve,
    run_checks,
)
from .reference import make_check_data

__all__ = ["check_emulator", "EMULATOR_CHECKS", "EmulatorCase", "CheckResult", "ComponentCheckError",
           "EmulatorCheckError", "make_check_data"]


class EmulatorCase(Case):
    """An emulator class and parameters, the generated training set (labels (M, 3), flux and ivar
    (M, P)), test labels ``theta`` (7, 3) and the fitted emulator, made once."""

    base = Emulator
    error = EmulatorCheckError

    def __init__(self, cls: type[Emulator], params: dict[str, Any], n_stars: int = 60, n_pixels: int = 20) -> None:
        super().__init__(cls, params)
        self.labels, self.flux, self.ivar = make_check_data(n_stars, n_pixels)
        self.theta = self.labels[:7] * np.array([1.01, 0.97, 1.0]) + np.array([0.0, 0.05, 0.02])
        self._fit: tuple[Emulator | None, str] | None = None

    def fit_once(self) -> tuple[Emulator | None, str]:
        """(the fitted emulator, "") or (None or the emulator, what is wrong with ``fit``)."""
        if self._fit is None:
            data = (self.labels.copy(), self.flux.copy(), self.ivar.copy())
            emu = self.fresh()
            try:
                out = emu.fit(*data)
            except Exception as err:  # noqa: BLE001 - reported by check_fit
                self._fit = (None, f"{type(err).__name__}: {err}")
                return self._fit
            n_lab, p = self.labels.shape[1], self.flux.shape[1]
            problem = ""
            if out is not emu:
                problem = "fit() must return self"
            elif not all(np.array_equal(a, b) for a, b in zip(data, (self.labels, self.flux, self.ivar))):
                problem = "fit() modified its input arrays"
            elif getattr(emu, "n_labels_", None) != n_lab or getattr(emu, "n_pixels_", None) != p:
                problem = (f"n_labels_/n_pixels_ are {getattr(emu, 'n_labels_', None)}/"
                           f"{getattr(emu, 'n_pixels_', None)}, expected {n_lab}/{p}")
            self._fit = (emu, problem)
        return self._fit

    def fitted(self) -> Emulator:
        """The fitted emulator; :class:`NotRun` when the fit failed."""
        emu, problem = self.fit_once()
        if problem or emu is None:
            raise NotRun("fit failed")
        return emu


check = checker(EmulatorCase)
check_params = params_check(EmulatorCase)


@check("unfitted use raises NotFittedError")
def check_unfitted(case: EmulatorCase) -> str:
    """``predict`` before ``fit`` raises :class:`~slamfw.NotFittedError`."""
    return raises(lambda: case.fresh().predict(case.labels[:2]), NotFittedError)


@check("fit returns self and sets n_labels_, n_pixels_")
def check_fit(case: EmulatorCase) -> str:
    """``fit`` returns self, leaves its inputs alone and sets ``n_labels_`` and ``n_pixels_``."""
    return case.fit_once()[1]


@check("predict output shape and finiteness")
def check_predict_shape(case: EmulatorCase) -> str:
    """``predict`` of (K, L) labels is finite (K, P) flux; of (L,) labels, (1, P)."""
    emu, theta, p = case.fitted(), case.theta, case.flux.shape[1]
    out = np.asarray(emu.predict(theta))
    if out.shape != (theta.shape[0], p):
        return f"predict((K, L)) returned shape {out.shape}, expected {(theta.shape[0], p)}"
    if not np.all(np.isfinite(out)):
        return "predict returned non-finite flux"
    one = np.asarray(emu.predict(theta[0]))
    if one.shape != (1, p):
        return f"predict((L,)) returned shape {one.shape}, expected (1, {p})"
    return ""


@check("predict vectorised equals one at a time")
def check_vectorised(case: EmulatorCase) -> str:
    """``predict`` on K label vectors equals K calls on one."""
    emu, theta = case.fitted(), case.theta
    many = emu.predict(theta)
    single = np.vstack([emu.predict(t[None]) for t in theta])
    if not np.allclose(many, single, rtol=1e-10, atol=1e-12):
        return f"predict on {len(theta)} label vectors differs from one at a time by " \
               f"{np.max(np.abs(many - single)):.3g}"
    return ""


@check("fit reproduces the training spectra")
def check_learns(case: EmulatorCase) -> str:
    """The median over pixels of training MSE / flux variance is below 0.5."""
    resid = case.fitted().predict(case.labels) - case.flux
    ratio = np.median(np.mean(resid ** 2, axis=0) / np.var(case.flux, axis=0))
    if not ratio < 0.5:
        return f"the fit reproduces the training flux poorly: median MSE / variance = {ratio:.3g} (>= 0.5)"
    return f"note: median training MSE / variance = {ratio:.3g}"


@check("deterministic given its parameters (seed)")
def check_deterministic(case: EmulatorCase) -> str:
    """Two fits with equal parameters on equal data predict the same flux."""
    a = case.fitted().predict(case.theta)
    b = case.fresh().fit(case.labels.copy(), case.flux.copy(), case.ivar.copy()).predict(case.theta)
    if not np.allclose(a, b, rtol=1e-10, atol=1e-12):
        return f"two fits with the same parameters differ by {np.max(np.abs(a - b)):.3g}"
    return ""


@check("jacobian matches central finite differences")
def check_jacobian(case: EmulatorCase) -> str:
    """``jacobian`` (K, P, L) agrees with central differences of ``predict`` to 1e-3 (relative,
    in units of the flux change over one label standard deviation)."""
    emu, theta, labels = case.fitted(), case.theta, case.labels
    n_lab, p = labels.shape[1], case.flux.shape[1]
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
    err = np.max(np.abs(jac - fd) * labels.std(0)) / max(np.max(np.abs(fd) * labels.std(0)), 1e-12)
    if not err < 1e-3:
        return f"jacobian differs from central finite differences by {err:.3g} (relative)"
    return f"note: relative difference from central finite differences {err:.1e}"


@check("least_squares_terms agree with predict_and_jacobian")
def check_least_squares_terms(case: EmulatorCase) -> str:
    """``least_squares_terms(theta, w, w * f)`` gives the cost (K,), ``J^T r`` (K, L) and ``J^T J``
    (K, L, L) of ``r = w f - w predict(theta)``, ``J = dr/dtheta``, as computed here from
    ``predict_and_jacobian``, to 1e-9 relative (weights with zeros, the flux of a training star);
    where it declares ``model_out`` (plugin API 1.8), the (K, P) array it fills is ``predict(theta)``
    to 1e-9 relative at every pixel (weight 0 or not), and the terms are the same."""
    emu, theta = case.fitted(), case.theta
    k, p = theta.shape[0], case.flux.shape[1]
    w = np.sqrt(case.ivar[:k]) * (np.arange(p) % 5 != 0)              # every 5th pixel weight 0
    wf = w * case.flux[:k]
    try:
        got = emu.least_squares_terms(theta, w, wf)
    except Exception as err:  # noqa: BLE001 - reported as the check's failure
        return f"least_squares_terms raised {type(err).__name__}: {err}"
    model, jac = emu.predict_and_jacobian(theta)
    r = wf - w * np.asarray(model)
    jr = -w[:, :, None] * np.asarray(jac)                                  # (K, P, L)
    want = (0.5 * (r ** 2).sum(1), np.einsum("kpl,kp->kl", jr, r), np.einsum("kpl,kpm->klm", jr, jr))
    for name, a, b in zip(("cost", "J^T r", "J^T J"), got, want):
        a = np.asarray(a, float)
        if a.shape != b.shape:
            return f"least_squares_terms: {name} has shape {a.shape}, expected {b.shape}"
        if not np.allclose(a, b, rtol=1e-9, atol=1e-9 * max(np.abs(b).max(), 1e-300)):
            return (f"least_squares_terms: {name} differs from predict_and_jacobian's by "
                    f"{np.abs(a - b).max() / max(np.abs(b).max(), 1e-300):.3g} (relative to its largest)")
    if declares(emu.least_squares_terms, "model_out"):     # plugin API 1.8
        out = np.full((k, p), np.nan)
        try:
            again = emu.least_squares_terms(theta, w, wf, model_out=out)
        except Exception as err:  # noqa: BLE001 - reported as the check's failure
            return f"least_squares_terms(..., model_out=...) raised {type(err).__name__}: {err}"
        if np.isnan(out).any():
            return "least_squares_terms(..., model_out=...) left model_out unfilled (NaN) at some pixels"
        want_model = np.asarray(emu.predict(theta), float)
        if not np.allclose(out, want_model, rtol=1e-9, atol=1e-9 * max(np.abs(want_model).max(), 1e-300)):
            return (f"least_squares_terms: the model_out it fills differs from predict's by "
                    f"{np.abs(out - want_model).max() / max(np.abs(want_model).max(), 1e-300):.3g} (relative to its "
                    f"largest)")
        for name, a, b in zip(("cost", "J^T r", "J^T J"), again, got):
            if not np.array_equal(np.asarray(a, float), np.asarray(b, float)):
                return f"least_squares_terms: {name} differs with model_out given"
    return ""


@check("model_error_ shape and positivity")
def check_model_error(case: EmulatorCase) -> str:
    """``model_error_`` is (P,), finite and > 0."""
    err = np.asarray(getattr(case.fitted(), "model_error_", None), dtype=float)
    p = case.flux.shape[1]
    if err.shape != (p,):
        return f"model_error_ has shape {err.shape}, expected ({p},)"
    if not (np.all(np.isfinite(err)) and np.all(err > 0)):
        return "model_error_ must be finite and > 0 at every pixel"
    return ""


@check("cv_mse_/cv_md_/cv_scheme_ (optional)")
def check_cv_attributes(case: EmulatorCase) -> str:
    """When present, ``cv_mse_`` (P,) is finite and >= 0, ``cv_md_`` (P,) finite, ``cv_scheme_`` a str."""
    emu, p = case.fitted(), case.flux.shape[1]
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


@check("save -> load gives identical predictions")
def check_save_load(case: EmulatorCase) -> str:
    """``to_state`` -> npz file (no pickle) and JSON -> ``from_state`` predicts identically."""
    emu, theta = case.fitted(), case.theta
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
    other = case.cls.from_state(loaded_arrays, json.loads(meta_text))
    for what, a, b in (("predict", emu.predict(theta), other.predict(theta)),
                       ("jacobian", emu.jacobian(theta), other.jacobian(theta)),
                       ("model_error_", emu.model_error_, other.model_error_)):
        if np.shape(a) != np.shape(b) or not np.allclose(a, b, rtol=1e-12, atol=1e-14):
            return f"{what} differs after to_state -> file -> from_state"
    return ""


@check("clear errors on wrong label count / NaN labels")
def check_bad_labels(case: EmulatorCase) -> str:
    """``predict``/``jacobian`` with L+1 or L-1 labels, or NaN labels, raise a SlamfwError."""
    emu, theta = case.fitted(), case.theta
    nan = theta.copy()
    nan[1, 0] = np.nan
    for what, fn in (("predict with L+1 labels", lambda: emu.predict(np.hstack([theta, theta[:, :1]]))),
                     ("predict with NaN labels", lambda: emu.predict(nan)),
                     ("jacobian with L-1 labels", lambda: emu.jacobian(theta[:, :-1])),
                     ("jacobian with NaN labels", lambda: emu.jacobian(nan))):
        msg = raises(fn)
        if msg:
            return f"{what}: {msg}"
    return ""


@check("clear errors on bad training data")
def check_bad_training_data(case: EmulatorCase) -> str:
    """``fit`` with a NaN label or with fewer spectra than label rows raises a SlamfwError."""
    labels, flux, ivar = case.labels, case.flux, case.ivar
    bad = labels.copy()
    bad[4, 1] = np.nan
    for what, fn in (("NaN training label", lambda: case.fresh().fit(bad, flux.copy(), ivar.copy())),
                     ("flux with fewer stars than labels",
                      lambda: case.fresh().fit(labels.copy(), flux[:-1].copy(), ivar[:-1].copy()))):
        msg = raises(fn)
        if msg:
            return f"fit with {what}: {msg}"
    return ""


@check("masked training pixels (ivar 0) are tolerated")
def check_masked_pixels(case: EmulatorCase) -> str:
    """``fit`` on spectra with ivar-0 pixels (some with NaN flux) gives finite predictions."""
    f2, i2 = case.flux.copy(), case.ivar.copy()
    rows = np.arange(0, f2.shape[0], 7)
    f2[rows, 3] = np.nan
    i2[rows, 3] = 0.0
    i2[5, :4] = 0.0
    out = case.fresh().fit(case.labels.copy(), f2, i2).predict(case.theta)
    if not np.all(np.isfinite(out)):
        return "fit on spectra with masked pixels (ivar 0, NaN flux) gives non-finite predictions"
    return ""


#: The emulator checks, in the order :func:`check_emulator` runs them.
EMULATOR_CHECKS = [check_params, check_unfitted, check_fit, check_predict_shape, check_vectorised, check_learns,
                   check_deterministic, check_jacobian, check_least_squares_terms, check_model_error, check_cv_attributes, check_save_load,
                   check_bad_labels, check_bad_training_data, check_masked_pixels]


def check_emulator(emulator: type[Emulator] | Emulator, params: dict[str, Any] | None = None, *,
                   raise_on_fail: bool = True, n_stars: int = 60, n_pixels: int = 20
                   ) -> list[CheckResult]:
    """Run the emulator contract checks; return one :class:`CheckResult` per check.

    Parameters
    ----------
    emulator : an :class:`~slamfw.Emulator` subclass (built with ``params``) or an unfitted
        instance (its ``get_params()`` are used for every fresh copy the checks need).
    raise_on_fail : raise :class:`EmulatorCheckError` (a :class:`ComponentCheckError`) naming
        the failed checks.
    n_stars, n_pixels : size of the generated training set (labels (n_stars, 3), flux and ivar
        (n_stars, n_pixels)).
    """
    cls, params = resolve(emulator, params, Emulator)
    case = EmulatorCase(cls, params, n_stars=n_stars, n_pixels=n_pixels)
    return run_checks(EMULATOR_CHECKS, case, raise_on_fail)
