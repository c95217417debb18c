"""The conformance kits: every built-in component passes its kind's kit, and each kit catches
deliberately broken components (exactly the checks they should fail)."""
import types

import numpy as np
import pytest
from pydantic import Field
from scipy.stats import pearsonr

import slamfw
from slamfw import ConfigError, DataError, Inferer, InputPath, LabelResult, Params, Reader, registry
from slamfw.cli import main
from slamfw.testing import (
    CHECKS, ComponentCheckError, EmulatorCheckError, ReferenceEmulator, check_analyzer, check_component,
    check_emulator, check_executor, check_inferer, check_normalizer, check_reader, make_reference_model,
    parametrize_with_checks,
)
from slamfw.testing import inferer as inferer_kit
from slamfw_plugins.analyzers.cv_scatter import CVScatterAnalyzer
from slamfw_plugins.emulators.cannon import CannonEmulator
from slamfw_plugins.inferers.lm import LMInferer
from slamfw_plugins.normalizers.identity import IdentityNormalizer
from slamfw_plugins.normalizers.spline import SplineNormalizer
from slamfw_plugins.readers.mock import MockReader

from .conftest import mock_set


def failed(results):
    return {r.check for r in results if not r.passed}


# ---------------------------------------------------------------------------------- emulators
BUILTIN = [
    ("slam", {}),
    ("slam", {"C": [3.0], "gamma": [0.2], "n_folds": 3, "max_kernel_stars": 10}),
    ("cannon", {}),
    ("cannon", {"order": 1, "model_error": "scatter"}),
    ("cannon", {"order": 3, "regularization": 10.0}),
    ("krr", {}),
]


@pytest.mark.parametrize("name,params", BUILTIN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BUILTIN)])
def test_builtin_emulators_pass(name, params):
    results = check_emulator(registry.get_component("emulator", name), params)
    assert len(results) == 15 and all(r.passed for r in results)
    assert [r.check for r in results] == [c.name for c in CHECKS["emulator"]]


def test_instances_are_checked_with_their_parameters():
    results = check_emulator(CannonEmulator(order=1))
    assert all(r.passed for r in results)
    with pytest.raises(TypeError, match="give params with a class only"):
        check_emulator(CannonEmulator(order=1), {"order": 2})


class FlippedJacobian(CannonEmulator):
    def jacobian(self, labels):
        return -super().jacobian(labels)


class Unvalidated(CannonEmulator):
    def predict(self, labels):
        z = (np.atleast_2d(labels) - self.label_scaler_.mean_[: np.shape(labels)[-1]]) / 1.0
        return np.zeros((z.shape[0], self.n_pixels_)) + self.coef_[:, 0]


class Noisy(CannonEmulator):
    def fit(self, labels, flux, ivar):
        super().fit(labels, flux, ivar)
        self.coef_ = self.coef_ + np.random.default_rng().normal(0, 1e-3, self.coef_.shape)  # unseeded
        return self


class StaleTerms(CannonEmulator):
    def least_squares_terms(self, labels, weights, weighted_flux):
        cost, grad, jtj = super().least_squares_terms(labels, weights, weighted_flux)
        return cost, grad, jtj * (1 + 1e-6)          # J^T J a little off: the batched lm would err


class StaleModelOut(CannonEmulator):
    def least_squares_terms(self, labels, weights, weighted_flux, *, jacobian_precision="double", model_out=None):
        terms = super().least_squares_terms(labels, weights, weighted_flux, model_out=model_out)
        if model_out is not None:
            model_out[:, ::7] += 1e-6                   # the kept model a little off: rmse and chi2 would err
        return terms


class IgnoresModelOut(CannonEmulator):
    def least_squares_terms(self, labels, weights, weighted_flux, *, jacobian_precision="double", model_out=None):
        return super().least_squares_terms(labels, weights, weighted_flux)     # declares model_out, fills nothing


class LosesState(CannonEmulator):
    def to_state(self):
        arrays, meta = super().to_state()
        arrays["coef"] = arrays["coef"].astype(np.float16)
        return arrays, meta


@pytest.mark.parametrize("cls,failing", [
    (FlippedJacobian, {"check_jacobian"}),
    (Unvalidated, {"check_bad_labels", "check_unfitted", "check_learns", "check_jacobian"}),
    (Noisy, {"check_deterministic"}),
    (LosesState, {"check_save_load"}),
    (StaleTerms, {"check_least_squares_terms"}),
    (StaleModelOut, {"check_least_squares_terms"}),
    (IgnoresModelOut, {"check_least_squares_terms"}),
])
def test_kit_catches_broken_emulators(cls, failing):
    results = check_emulator(cls, raise_on_fail=False)
    assert failed(results) == failing
    with pytest.raises(EmulatorCheckError, match=f"fails {len(failing)} of 15") as err:
        check_emulator(cls)
    assert isinstance(err.value, ComponentCheckError) and {r.check for r in err.value.failed} == failing


def test_reference_emulator_keeps_the_emulator_contract_but_learns_nothing():
    results = check_emulator(ReferenceEmulator, {"n_pixels": 40}, n_pixels=40, raise_on_fail=False)
    assert failed(results) == {"check_learns"}  # it knows its model and ignores the training flux
    model = make_reference_model()
    assert model.train_labels.shape == (200, 3) and model.emulator.predict(model.train_labels).shape == (200, 40)


# ---------------------------------------------------------------------------------- inferers
class GaussNewton(Inferer):
    """A small Gauss-Newton inferer that keeps the contract; the broken ones change one method."""

    class Params(Params):
        n_iter: int = 25

    def validate(self, model, flux, ivar):
        flux, ivar = np.atleast_2d(np.asarray(flux, float)), np.atleast_2d(np.asarray(ivar, float))
        if flux.shape != ivar.shape or flux.shape[1] != model.emulator.n_pixels_:
            raise DataError(f"flux {flux.shape} and ivar {ivar.shape} must be (N, {model.emulator.n_pixels_})")
        if not np.all(np.isfinite(flux[ivar > 0])):
            raise DataError("non-finite flux at a pixel with ivar > 0")
        return flux, ivar

    def weights(self, ivar):
        return np.sqrt(ivar)

    def start(self, model, flux, w):
        library = model.emulator.predict(model.train_labels)
        chi2 = (((flux[:, None, :] - library[None]) * w[:, None, :]) ** 2).sum(-1)
        return model.train_labels[np.argmin(chi2, axis=1)]

    def infer(self, model, flux, ivar, prior=None, ids=None):
        if prior is not None:
            raise ConfigError("gauss-newton takes no prior")
        flux, ivar = self.validate(model, flux, ivar)
        w = self.weights(ivar)
        flux = np.where(w > 0, flux, 0.0)
        emu, scale = model.emulator, model.train_labels.std(0)
        theta = init = self.start(model, flux, w)
        for _ in range(self.n_iter):
            jac = emu.jacobian(theta) * w[:, :, None] * scale
            r = (flux - emu.predict(theta)) * w
            step = np.linalg.solve(np.einsum("npl,npm->nlm", jac, jac), np.einsum("npl,np->nl", jac, r)[..., None])
            theta = theta + step[..., 0] * scale
        jac = emu.jacobian(theta) * w[:, :, None]
        resid = flux - emu.predict(theta)
        n_good = (w > 0).sum(1)
        return LabelResult(labels=theta, cov=np.linalg.inv(np.einsum("npl,npm->nlm", jac, jac)),
                           converged=np.ones(len(theta), bool), init=init, label_names=list(model.label_names),
                           rmse=np.sqrt((resid ** 2 * (w > 0)).sum(1) / n_good),
                           chi2=((resid * w) ** 2).sum(1) / (n_good - theta.shape[1]))


class IgnoresIvar(GaussNewton):
    """Weights every pixel alike: the flux of ivar-0 pixels counts."""

    def weights(self, ivar):
        return np.full_like(ivar, np.sqrt(np.median(ivar[ivar > 0])))


class BatchMeanStart(GaussNewton):
    """Starts every star at the batch's mean guess and stops after 3 iterations."""

    class Params(Params):
        n_iter: int = 3

    def start(self, model, flux, w):
        return np.broadcast_to(super().start(model, flux, w).mean(0), (flux.shape[0], model.train_labels.shape[1]))


class UnvalidatedInferer(GaussNewton):
    """Does not check its input: NaN flux is silently masked, wrong shapes raise numpy errors."""

    def validate(self, model, flux, ivar):
        flux = np.asarray(flux, float)
        return flux, np.where(np.isfinite(flux), np.asarray(ivar, float), 0.0)


class ReturnsInit(GaussNewton):
    """Gives back the initial guess (the nearest library star)."""

    class Params(Params):
        n_iter: int = 0


class Jittery(GaussNewton):
    """Unseeded: adds a little random noise to the labels."""

    def infer(self, model, flux, ivar, prior=None, ids=None):
        res = super().infer(model, flux, ivar, prior, ids)
        res.labels = res.labels + np.random.default_rng().normal(0, 1e-6, res.labels.shape) * model.train_labels.std(0)
        return res


class DiagonalCov(GaussNewton):
    """Returns the variances (N, L) where the covariances (N, L, L) belong."""

    def infer(self, model, flux, ivar, prior=None, ids=None):
        res = super().infer(model, flux, ivar, prior, ids)
        res.cov = np.diagonal(res.cov, axis1=1, axis2=2).copy()
        return res


class ScribblesOnInput(GaussNewton):
    """Zeroes the caller's flux at bad pixels, in place (and before checking the shapes)."""

    def infer(self, model, flux, ivar, prior=None, ids=None):
        flux[ivar == 0] = 0.0
        return super().infer(model, flux, ivar, prior, ids)


class IgnoresPrior(GaussNewton):
    """Takes a prior and drops it silently."""

    def infer(self, model, flux, ivar, prior=None, ids=None):
        return super().infer(model, flux, ivar, None, ids)


class NoIds(GaussNewton):
    """Written for plugin API 1.0: no ids."""

    def infer(self, model, flux, ivar, prior=None):
        return super().infer(model, flux, ivar, prior)


class NoStarsPerCall(GaussNewton):
    """Asks for calls of no stars (None or a positive number is the contract)."""

    def stars_per_call(self, model):
        return 0


@pytest.mark.parametrize("params", [{}, {"method": "trf", "bound_margin": 0.1}])
def test_builtin_inferer_passes(params):
    results = check_inferer(registry.get_component("inferer", "lm"), params)
    assert [r.check for r in results] == [c.name for c in CHECKS["inferer"]] and all(r.passed for r in results)


def test_a_minimal_correct_inferer_passes():
    check_inferer(GaussNewton)


@pytest.mark.parametrize("cls,failing", [
    (IgnoresIvar, {"check_zero_ivar_ignored"}),
    (BatchMeanStart, {"check_chunk_invariance"}),
    (UnvalidatedInferer, {"check_nan_flux", "check_bad_shapes"}),
    (ReturnsInit, {"check_recovers_labels"}),
    (Jittery, {"check_deterministic", "check_chunk_invariance", "check_zero_ivar_ignored"}),
    (DiagonalCov, {"check_result_format", "check_deterministic", "check_chunk_invariance", "check_zero_ivar_ignored"}),
    (ScribblesOnInput, {"check_inputs_unchanged", "check_bad_shapes"}),
    (IgnoresPrior, {"check_prior_and_ids"}),
    (NoIds, {"check_prior_and_ids"}),
    (NoStarsPerCall, {"check_stars_per_call"}),
])
def test_inferer_kit_catches_broken_inferers(cls, failing):
    assert failed(check_inferer(cls, raise_on_fail=False)) == failing
    with pytest.raises(ComponentCheckError, match=f"fails {len(failing)} of {len(CHECKS['inferer'])}"):
        check_inferer(cls)


def test_one_check_alone():
    result = inferer_kit.check_chunk_invariance(LMInferer())
    assert result.passed and result.check == "check_chunk_invariance"
    with pytest.raises(ComponentCheckError, match="check_chunk_invariance") as err:
        inferer_kit.check_chunk_invariance(BatchMeanStart())
    assert [r.check for r in err.value.results] == ["check_chunk_invariance"]
    with pytest.raises(TypeError, match="Inferer"):
        inferer_kit.check_chunk_invariance(CannonEmulator())


# ---------------------------------------------------------------------------------- normalisers
class ForgetsIvarScaling(SplineNormalizer):
    """Divides the flux by the continuum but leaves the ivar as it was."""

    def normalize_one(self, wave, flux, ivar):
        nf, ni, cont = super().normalize_one(wave, flux, ivar)
        return nf, np.where(ni > 0, ivar, 0.0), cont


class NaNForBadStar(SplineNormalizer):
    """Returns NaN for a star without good pixels."""

    def normalize_one(self, wave, flux, ivar):
        if not np.any(ivar > 0):
            return (np.full_like(flux, np.nan),) * 3
        return super().normalize_one(wave, flux, ivar)


class OnlyOneGrid(IdentityNormalizer):
    """Accepts only one (P,) wavelength grid for all stars."""

    def normalize(self, wave, flux, ivar):
        if np.ndim(wave) != 1:
            raise ValueError("wave must be 1-D")
        return super().normalize(wave, flux, ivar)


class ScalesTheFlux(IdentityNormalizer):
    """Divides by the median flux but says the continuum is 1."""

    def normalize(self, wave, flux, ivar):
        nf, ni, cont = super().normalize(wave, flux, ivar)
        return nf / np.median(flux), ni, cont


class HalfContinuum(IdentityNormalizer):
    """Consistent, but its continuum is twice the true one: normalised spectra sit at 0.5."""

    def normalize(self, wave, flux, ivar):
        flux, ivar = np.atleast_2d(flux), np.atleast_2d(ivar)
        cont = np.full_like(flux, 2.0)
        return flux / cont, ivar * cont ** 2, cont


class JitteryContinuum(IdentityNormalizer):
    """Unseeded: each star's continuum is off by a random 0.1%."""

    def normalize(self, wave, flux, ivar):
        flux, ivar = np.atleast_2d(flux), np.atleast_2d(ivar)
        cont = np.ones_like(flux) * (1 + np.random.default_rng().normal(0, 1e-3, (flux.shape[0], 1)))
        return flux / cont, ivar * cont ** 2, cont


class FlatOutput(IdentityNormalizer):
    """Returns 1-D arrays."""

    def normalize(self, wave, flux, ivar):
        return tuple(a.ravel() for a in super().normalize(wave, flux, ivar))


class NormalisesInPlace(IdentityNormalizer):
    """Rescales the caller's arrays in place."""

    def normalize(self, wave, flux, ivar):
        flux *= 1.0000001
        return super().normalize(wave, flux, ivar)


class StoresAModifiedParam(IdentityNormalizer):
    """Its constructor changes a parameter after validation: clone() cannot reproduce it."""

    class Params(Params):
        smoothing: float = 1.0

    def __init__(self, **params):
        super().__init__(**params)
        self.smoothing = self.smoothing * 2


@pytest.mark.parametrize("name", ["spline", "none"])
def test_builtin_normalizers_pass(name):
    results = check_normalizer(registry.get_component("normalizer", name))
    assert [r.check for r in results] == [c.name for c in CHECKS["normalizer"]] and all(r.passed for r in results)


def test_spline_normalizer_passes_with_other_parameters():
    check_normalizer(SplineNormalizer(smoothing_length=50.0, k=2.0, k_upper=3.0, n_iter=1))


@pytest.mark.parametrize("cls,failing", [
    (ForgetsIvarScaling, {"check_ivar_scaling"}),
    (NaNForBadStar, {"check_unnormalisable"}),
    (OnlyOneGrid, {"check_wave_2d", "check_shifted_waves", "check_rest_frame"}),
    (ScalesTheFlux, {"check_ivar_scaling", "check_chunk_invariance", "check_shifted_waves", "check_rest_frame"}),
    (HalfContinuum, {"check_flat_continuum"}),
    (JitteryContinuum, {"check_deterministic", "check_chunk_invariance", "check_shifted_waves", "check_wave_2d",
                        "check_rest_frame"}),
    (FlatOutput, {"check_output_shapes", "check_shifted_waves", "check_wave_2d", "check_ivar_scaling",
                  "check_chunk_invariance", "check_unnormalisable", "check_deterministic", "check_flat_continuum",
                  "check_rest_frame"}),
    (NormalisesInPlace, {"check_inputs_unchanged", "check_ivar_scaling"}),
    (StoresAModifiedParam, {"check_params"}),
])
def test_normalizer_kit_catches_broken_normalizers(cls, failing):
    assert failed(check_normalizer(cls, raise_on_fail=False)) == failing


# ---------------------------------------------------------------------------------- readers
def save_npz(path, ss):
    """The table reader's npz layout (as in test_cli.py)."""
    np.savez(path, wave=ss.wave, flux=ss.flux, ivar=ss.ivar, id=ss.ids, snr=ss.meta["snr"],
             Teff=ss.labels[:, 0], logg=ss.labels[:, 1], FeH=ss.labels[:, 2])
    return path


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    return save_npz(tmp_path_factory.mktemp("kit") / "survey.npz", mock_set(15, seed=3, n_pixels=60))


class IgnoresItsPath(Reader):
    """Has a path parameter but always returns the same mock spectra."""

    class Params(Params):
        path: InputPath = Field(..., description="not read")

    def read(self):
        return MockReader(n_stars=5, n_pixels=50).read()


class Unseeded(MockReader):
    """A new random survey at every read."""

    def read(self):
        seed = int(np.random.default_rng().integers(2 ** 31))
        return MockReader(**{**self.get_params(), "seed": seed}).read()


class ReturnsDict(MockReader):
    """Returns the arrays in a dict."""

    def read(self):
        ss = super().read()
        return {"wave": ss.wave, "flux": ss.flux, "ivar": ss.ivar}


class Chatty(MockReader):
    """Prints while reading."""

    def read(self):
        print(f"reading {self.n_stars} stars")
        return super().read()


MOCK = {"n_stars": 20, "n_pixels": 200}


def test_builtin_mock_and_table_readers_pass(table_file):
    results = check_reader(registry.get_component("reader", "mock"), MOCK)
    assert all(r.passed for r in results)
    assert {r.check: r.message for r in results}["check_path_missing"] == "no InputPath parameter"
    for params in ({"path": str(table_file)}, {"path": str(table_file), "labels": ["Teff", "logg"],
                                               "where": {"Teff": [5000, 8000]}}):
        results = check_reader(registry.get_component("reader", "table"), params)
        assert [r.check for r in results] == [c.name for c in CHECKS["reader"]] and all(r.passed for r in results)


def test_builtin_miles_reader_passes(miles_dir):
    check_reader(registry.get_component("reader", "miles"),
                 {"path": str(miles_dir), "where": {"Teff": [5000, 5200]}})


class DropsTheLastChunk(MockReader):
    """Streams all but the last, partial chunk."""

    def iter_chunks(self, chunk_size):
        for part in super().iter_chunks(chunk_size):
            if part.n_stars == chunk_size:
                yield part


@pytest.mark.parametrize("cls,params,failing", [
    (IgnoresItsPath, "table", {"check_path_missing", "check_path_copy"}),
    (DropsTheLastChunk, MOCK, {"check_chunks"}),
    (Unseeded, MOCK, {"check_deterministic", "check_chunks"}),
    (ReturnsDict, MOCK, {"check_read", "check_deterministic", "check_chunks"}),
    (Chatty, MOCK, {"check_silent"}),
])
def test_reader_kit_catches_broken_readers(cls, params, failing, table_file):
    params = {"path": str(table_file)} if params == "table" else params
    assert failed(check_reader(cls, params, raise_on_fail=False)) == failing


def test_reader_kit_reports_a_missing_file():
    results = check_reader(registry.get_component("reader", "table"), {"path": "/no/such/file.npz"}, raise_on_fail=False)
    assert {"check_read", "check_deterministic"} <= failed(results)
    assert "does not exist" in {r.check: r.message for r in results}["check_read"]


# ---------------------------------------------------------------------------------- analyzers
class CrashesWithoutTruth(CVScatterAnalyzer):
    """Adds the largest |inferred - true| without asking whether true labels exist."""

    def analyze(self, ctx):
        report = super().analyze(ctx)
        report.numbers["max_abs_diff"] = float(np.max(np.abs(ctx.result.labels - ctx.test.labels)))
        return report


class CrashesWithOneStar(CVScatterAnalyzer):
    """Adds the correlation of Teff with S/N (undefined for one star: scipy raises)."""

    def analyze(self, ctx):
        report = super().analyze(ctx)
        report.numbers["teff_snr_corr"] = float(pearsonr(ctx.test.meta_column("snr"), ctx.result.labels[:, 0])[0])
        return report


class ReturnsADict(CVScatterAnalyzer):
    """Returns its numbers in a dict."""

    def analyze(self, ctx):
        return dict(super().analyze(ctx).numbers)


class InfiniteNumbers(CVScatterAnalyzer):
    """Reports an infinite number when a label's scatter is 0."""

    def analyze(self, ctx):
        report = super().analyze(ctx)
        report.numbers["precision"] = np.inf if ctx.test.n_stars == 1 else 1.0
        return report


class CorrectsTheTruth(CVScatterAnalyzer):
    """Rounds the inferred labels it was given, in place."""

    def analyze(self, ctx):
        if ctx.result is not None:
            ctx.result.labels[:] = np.round(ctx.result.labels, 1)
        return super().analyze(ctx)


@pytest.mark.parametrize("params", [{}, {"converged_only": False, "snr_edges": [10.0, 40.0, 200.0]}])
def test_builtin_analyzer_passes(params):
    results = check_analyzer(registry.get_component("analyzer", "cv-scatter"), params)
    assert [r.check for r in results] == [c.name for c in CHECKS["analyzer"]] and all(r.passed for r in results)


@pytest.mark.parametrize("cls,failing", [
    (CrashesWithoutTruth, {"check_no_truth"}),
    (CrashesWithOneStar, {"check_one_star"}),
    (ReturnsADict, {"check_with_truth", "check_no_truth", "check_loaded_model", "check_one_star",
                    "check_deterministic"}),
    (InfiniteNumbers, {"check_one_star"}),
    (CorrectsTheTruth, {"check_inputs_unchanged"}),
])
def test_analyzer_kit_catches_broken_analyzers(cls, failing):
    assert failed(check_analyzer(cls, raise_on_fail=False)) == failing


# ---------------------------------------------------------------------------------- dispatch
def test_check_component_dispatches_by_kind(table_file):
    for component, params in ((LMInferer, {}), (IdentityNormalizer(), None),
                              (CVScatterAnalyzer, None), (MockReader, MOCK), (CannonEmulator(order=1), None)):
        results = check_component(component, params)
        assert all(r.passed for r in results)
    with pytest.raises(TypeError, match="not a slamfw component"):
        check_component(object)


# ---------------------------------------------------------------------------------- parametrize_with_checks
def expected_failures(component):
    if isinstance(component, IgnoresIvar):
        return {"check_zero_ivar_ignored": "weights every pixel alike (kept to show xfail)"}
    return {}


@parametrize_with_checks([CannonEmulator(order=1), LMInferer(), IdentityNormalizer(),
                          MockReader(**MOCK), CVScatterAnalyzer(), IgnoresIvar()],
                         expected_failed_checks=expected_failures)
def test_parametrized_conformance(component, check):
    check(component)


def test_parametrize_with_checks_ids_and_marks():
    mark = parametrize_with_checks([CannonEmulator(order=1), IgnoresIvar()],
                                   expected_failed_checks=expected_failures).mark
    assert mark.args[0] == "component, check"
    cases = {p.id: p for p in mark.args[1]}
    assert len(cases) == len(CHECKS["emulator"]) + len(CHECKS["inferer"])
    assert "CannonEmulator(order=1)-check_jacobian" in cases
    xfail = cases["IgnoresIvar()-check_zero_ivar_ignored"].marks
    assert [(m.name, m.kwargs) for m in xfail] == [
        ("xfail", {"reason": "weights every pixel alike (kept to show xfail)", "strict": True})]
    assert not cases["IgnoresIvar()-check_chunk_invariance"].marks
    with pytest.raises(ValueError, match="no inferer checks named"):
        parametrize_with_checks([LMInferer()], expected_failed_checks=lambda c: {"check_typo": "?"})


# ---------------------------------------------------------------------------------- CLI
def test_cli_check_emulator(capsys):
    assert main(["check-emulator", "krr", "--param", "alpha=[0.01]"]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 15 and "15 passed, 0 failed" in out
    assert main(["check-emulator", "cannon"]) == 0
    assert "15 passed, 0 failed" in capsys.readouterr().out
    plugin = types.SimpleNamespace(slamfw_register_emulators=slamfw.hookimpl(
        lambda register: register("flipped", FlippedJacobian)))
    registry.register_plugin(plugin, name="flipped-plugin")
    try:
        assert main(["check-emulator", "flipped"]) == 1
        out = capsys.readouterr().out
        assert "FAIL  jacobian matches central finite differences" in out and "14 passed, 1 failed" in out
    finally:
        registry.unregister_plugin("flipped-plugin")
    assert main(["check-emulator", "nope"]) == 2
    assert "no emulator named 'nope'" in capsys.readouterr().err


def test_cli_check_plugin_builtins(capsys, miles_dir):
    assert main(["check-plugin", "inferer", "lm"]) == 0
    out = capsys.readouterr().out
    n = len(CHECKS["inferer"])
    assert out.count("  PASS  ") == n and "FAIL" not in out and f"{n} passed, 0 failed" in out
    assert main(["check-plugin", "reader", "miles", "--param", f"path={miles_dir}",
                 "--param", 'where={"Teff": [5000, 5200]}']) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and f"{len(CHECKS['reader'])} passed, 0 failed" in out
    for kind, name in (("normalizer", "none"), ("analyzer", "cv-scatter")):
        assert main(["check-plugin", kind, name]) == 0


def test_cli_check_plugin_broken_inferer(capsys):
    plugin = types.SimpleNamespace(slamfw_register_inferers=slamfw.hookimpl(
        lambda register: register("broken-x", IgnoresIvar)))
    registry.register_plugin(plugin, name="broken-x-plugin")
    try:
        assert main(["check-plugin", "inferer", "broken-x"]) == 1
        out = capsys.readouterr().out
        assert "FAIL  flux at ivar-0 pixels is ignored" in out
        assert f"{len(CHECKS['inferer']) - 1} passed, 1 failed" in out
    finally:
        registry.unregister_plugin("broken-x-plugin")


# ---------------------------------------------------------------------------------- executors
class Reversed(slamfw.SerialExecutor):
    """Gives the results in reverse order."""

    def imap(self, func, tasks, **kw):
        yield from reversed(list(super().imap(func, tasks, **kw)))


class Greedy(slamfw.SerialExecutor):
    """Takes the whole stream of tasks before running any."""

    def imap(self, func, tasks, **kw):
        yield from super().imap(func, list(tasks), **kw)


class RunsAhead(slamfw.SerialExecutor):
    """Hands back the first result, then runs the rest of the stream in a thread while the caller
    is away (the results pile up)."""

    def imap(self, func, tasks, *, shared=None, **kw):
        import queue
        import threading
        tasks, results, shared = iter(tasks), queue.Queue(), shared or {}

        def work():
            try:
                for task in tasks:
                    results.put(func(*task, **shared))
                results.put(StopIteration)
            except Exception as exc:  # noqa: BLE001 - to the caller
                results.put(exc)
        first = func(*next(tasks), **shared)
        threading.Thread(target=work, daemon=True).start()
        yield first
        while (result := results.get()) is not StopIteration:
            if isinstance(result, Exception):
                raise result
            yield result


class Batches(slamfw.SerialExecutor):
    """Takes tasks three at a time before running them (a failing stream loses the batch's others)."""

    def imap(self, func, tasks, **kw):
        import itertools
        tasks = iter(tasks)
        while batch := list(itertools.islice(tasks, 3)):
            yield from super().imap(func, batch, **kw)


class Swallows(slamfw.SerialExecutor):
    """Returns None for a task that raises."""

    def imap(self, func, tasks, *, shared=None, **kw):
        for task in tasks:
            try:
                yield func(*task, **(shared or {}))
            except Exception:  # noqa: BLE001 - the bug this kit must catch
                yield None


class NoWorkers(slamfw.SerialExecutor):
    @property
    def n_workers(self):
        return 0


class Elsewhere(slamfw.SerialExecutor):
    workers_on_this_machine = "somewhere else"


class PreparesHere(slamfw.SerialExecutor):
    """Runs prestart's ``prepare`` in the calling process, and lets its error through."""

    def prestart(self, prepare=None):
        if prepare is not None:
            prepare()


@pytest.mark.parametrize("name,params", [("serial", {}), ("local", {}), ("local", {"workers": 2}),
                                         ("dask", {"workers": 2})])
def test_builtin_executors_pass(name, params):
    results = check_executor(registry.get_component("executor", name), params)
    assert [r.check for r in results] == [c.name for c in CHECKS["executor"]] and all(r.passed for r in results)


@pytest.mark.parametrize("cls,failing", [
    (Reversed, {"check_order", "check_lazy", "check_failing_stream", "check_shared_array",   # on_result sees
                "check_prestart"}),
    (Greedy, {"check_lazy", "check_failing_stream"}),                                         # what map returns
    (RunsAhead, {"check_lazy"}),
    (Batches, {"check_failing_stream"}),
    (Swallows, {"check_errors"}),
    (NoWorkers, {"check_lifecycle"}),
    (Elsewhere, {"check_lifecycle"}),
    (PreparesHere, {"check_prestart"}),
])
def test_executor_kit_catches_broken_executors(cls, failing):
    assert failed(check_executor(cls, raise_on_fail=False)) == failing


def test_builtin_lamost_and_apogee_readers_pass(lamost_dir, apogee_dir):
    """The readers of survey files pass the kit on the real files, chunk_sources included: per-star
    grids padded per piece, NaN metadata, and a file of the APOGEE samples whose star an earlier
    group's file gave (left out by chunk_read)."""
    for name, params in (("lamost", {"path": str(lamost_dir), "labels": str(lamost_dir / "labels_dr10_lasp.csv")}),
                         ("apogee", {"path": str(apogee_dir)})):
        results = check_reader(registry.get_component("reader", name), params)
        assert all(r.passed for r in results)
        assert {r.check: r.message for r in results}["check_chunk_sources"] == ""
