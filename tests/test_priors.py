"""The built-in priors (uniform, gaussian, table) and the prior conformance kit (check_prior)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from slamfw_plugins.priors.builtin import GaussianPrior, UniformPrior
from slamfw_plugins.priors.table import TablePrior

from slamfw import (
    ConfigError,
    DataError,
    LeastSquaresForm,
    Params,
    Prior,
    SlamfwError,
    registry,
)
from slamfw.cli import main
from slamfw.testing import (
    CHECKS,
    KITS,
    ComponentCheckError,
    check_component,
    check_prior,
)
from slamfw.testing import prior as prior_kit

NAMES = ["Teff", "logg", "FeH"]
TRAIN = np.array([[4000.0, 1.0, -2.0], [7000.0, 5.0, 0.5], [5500.0, 3.0, -0.5]])


def fitted(prior: Prior) -> Prior:
    return prior.fit(TRAIN.copy(), NAMES)


# ------------------------------------------------------------------------------------ uniform
def test_uniform_default_box_is_the_training_range_widened_by_margin():
    prior = fitted(UniformPrior(margin=0.1))
    assert np.allclose(prior.lo_, [3700.0, 0.6, -2.25]) and np.allclose(prior.hi_, [7300.0, 5.4, 0.75])
    theta = np.array([[5000.0, 3.0, -1.0], [3650.0, 3.0, -1.0], [5000.0, 5.3, 0.7], [5000.0, 3.0, 0.8]])
    assert prior.log_prob(theta).tolist() == [0.0, -np.inf, 0.0, -np.inf]
    form = prior.least_squares_form()
    assert np.all(np.isnan(form.mean)) and np.all(form.sigma == np.inf)
    assert np.array_equal(form.lo, prior.lo_) and np.array_equal(form.hi, prior.hi_)


def test_uniform_bounds_replace_the_training_range():
    prior = fitted(UniformPrior(bounds={"logg": [0.0, 6.0]}, margin=0.5))
    assert prior.lo_[1] == 0.0 and prior.hi_[1] == 6.0          # given bounds are not widened
    assert prior.lo_[0] == 2500.0 and prior.hi_[0] == 8500.0
    assert prior.log_prob([[5000.0, 5.9, 0.0]])[0] == 0.0


@pytest.mark.parametrize("params,match", [
    ({"bounds": {"Tef": [4000, 5000]}}, r"bounds\.Tef: no such label \(the labels are Teff, logg, FeH\)"),
])
def test_uniform_unknown_label_names_the_key(params, match):
    with pytest.raises(ConfigError, match=match):
        fitted(UniformPrior(**params))


@pytest.mark.parametrize("params,match", [
    ({"bounds": {"Teff": [5000, 4000]}}, r"bounds: Teff: lo \(5000\) must be below hi \(4000\)"),
    ({"bounds": {"Teff": [5000, 5000]}}, r"bounds: Teff"),
    ({"margin": -0.1}, r"margin: Input should be greater than or equal to 0"),
])
def test_uniform_bad_parameters_name_the_key(params, match):
    with pytest.raises(ConfigError, match=match):
        UniformPrior(**params)


def test_priors_need_fitting_and_the_right_label_count():
    with pytest.raises(SlamfwError, match="not fitted"):
        UniformPrior().log_prob(TRAIN)
    with pytest.raises(DataError, match=r"expected \(W, 3\)"):
        fitted(UniformPrior()).log_prob(np.zeros((2, 4)))
    with pytest.raises(DataError, match="do not match the 3 label names"):
        UniformPrior().fit(TRAIN[:, :2], NAMES)


# ----------------------------------------------------------------------------------- gaussian
def test_gaussian_values_form_and_box():
    prior = fitted(GaussianPrior(mean={"logg": 4.4}, sigma={"logg": 0.1}, bounds={"FeH": [-1.0, 0.0]}))
    form = prior.least_squares_form()
    assert np.isnan(form.mean[[0, 2]]).all() and form.mean[1] == 4.4
    assert form.sigma[1] == 0.1 and np.isinf(form.sigma[[0, 2]]).all()
    assert form.lo.tolist() == [-np.inf, -np.inf, -1.0] and form.hi.tolist() == [np.inf, np.inf, 0.0]
    theta = np.array([[5000.0, 4.4, -0.5], [9000.0, 4.6, -0.5], [5000.0, 4.4, 0.5]])
    assert np.allclose(prior.log_prob(theta), [0.0, -2.0, -np.inf])   # Teff has no prior: 9000 K is fine


@pytest.mark.parametrize("params,match", [
    ({"mean": {"Teff": 5000.0}}, r"mean and sigma must name the same labels; only one of them names \['Teff'\]"),
    ({"mean": {"Teff": 5000.0}, "sigma": {"Teff": 0.0}}, r"GaussianPrior\.sigma\.Teff: must be finite and > 0"),
    ({"mean": {"Teff": 5000.0}, "sigma": {"Teff": -1.0}}, r"GaussianPrior\.sigma\.Teff"),
    ({"mean": {"Teff": float("nan")}, "sigma": {"Teff": 1.0}}, r"GaussianPrior\.mean\.Teff: must be finite"),
    ({"bounds": {"FeH": [0.5, -0.5]}}, r"bounds: FeH: lo"),
    ({"mu": {}}, r"mu: unknown key"),
])
def test_gaussian_bad_parameters_name_the_key(params, match):
    with pytest.raises(ConfigError, match=match):
        GaussianPrior(**params)


@pytest.mark.parametrize("override, match", [
    ('prior.gaussian.sigma={"Teff": -1}', r"^prior\.gaussian\.sigma\.Teff: must be finite and > 0 \(got -1"),
    ('prior.gaussian.sigma={"Teff": Infinity}', r"^prior\.gaussian\.sigma\.Teff: must be finite and > 0"),
    ('prior.gaussian.mean={"Teff": NaN}', r"^prior\.gaussian\.mean\.Teff: must be finite \(got nan\)"),
    ('prior.gaussian.mean={"logg": 4.4}', r"^prior\.gaussian\.sigma: mean and sigma must name the same labels; "
                                          r"only one of them names \['Teff', 'logg'\]"),
])
def test_gaussian_config_errors_name_the_full_key(tmp_path, override, match):
    """Found by a bad-input hunt: these said ``: sigma.Teff must be finite and > 0``, without the
    section (the check ran on the whole model, whose errors have no key)."""
    from slamfw.config import load_config, selected
    path = tmp_path / "c.toml"
    path.write_text('labels = ["Teff", "logg"]\n[prior]\nname = "gaussian"\n'
                    '[prior.gaussian]\nmean = {Teff = 5000.0}\nsigma = {Teff = 100.0}\n')
    assert selected(load_config(path), "prior").params["sigma"] == {"Teff": 100.0}
    with pytest.raises(ConfigError, match=match):
        selected(load_config(path, [override]), "prior")


@pytest.mark.parametrize("params,match", [
    ({"mean": {"Tef": 5000.0}, "sigma": {"Tef": 100.0}}, r"gaussian prior: mean\.Tef: no such label"),
    ({"bounds": {"feh": [-1.0, 0.0]}}, r"gaussian prior: bounds\.feh: no such label"),
])
def test_gaussian_unknown_label_names_the_key(params, match):
    with pytest.raises(ConfigError, match=match):
        fitted(GaussianPrior(**params))


# -------------------------------------------------------------------------------------- table
def _catalogue(folder, fmt: str = "ecsv", ids=(101, 102, 103, 104)) -> str:
    """Four stars: 101 with Teff and logg, 102 with a NaN Teff sigma, 103 with a masked logg, 104
    with a negative logg sigma."""
    t = Table()
    t["source_id"] = list(ids)
    t["teff_phot"] = [5100.0, 5200.0, 5300.0, 5400.0]
    t["e_teff"] = [80.0, np.nan, 90.0, 100.0]
    t["logg_seis"] = MaskedColumn([4.40, 4.30, 0.0, 4.1], mask=[False, False, True, False])
    t["e_logg"] = [0.02, 0.03, 0.05, -0.01]
    path = folder / f"cat.{fmt}"
    t.write(path, format={"ecsv": "ascii.ecsv", "csv": "ascii.csv", "fits": "fits"}[fmt], overwrite=True)
    return str(path)


def table_params(path: str, **more) -> dict:
    return {"path": path, "id_column": "source_id",
            "columns": {"Teff": ["teff_phot", "e_teff"], "logg": ["logg_seis", "e_logg"]}, **more}


@pytest.mark.parametrize("fmt", ["ecsv", "csv", "fits"])
def test_table_joins_by_id(tmp_path, fmt):
    prior = fitted(TablePrior(**table_params(_catalogue(tmp_path, fmt))))
    assert TablePrior.per_star and prior.stars_ == ["101", "102", "103", "104"]
    form = prior.least_squares_form("101")
    assert form.mean[:2].tolist() == [5100.0, 4.4] and np.isnan(form.mean[2])
    assert form.sigma[:2].tolist() == [80.0, 0.02] and np.isinf(form.sigma[2])
    assert np.all(np.isinf(form.lo)) and np.all(np.isinf(form.hi))
    theta = np.array([[5100.0, 4.4, -3.0], [5260.0, 4.42, 0.0]])
    assert np.allclose(prior.log_prob(theta, "101"), [0.0, -0.5 * (2.0 ** 2 + 1.0 ** 2)])
    assert np.allclose(prior.log_prob(theta, 101), prior.log_prob(theta, "101"))     # ids compared as strings
    # unusable entries give no prior on that label: NaN sigma, masked mean, negative sigma
    assert np.isinf(prior.least_squares_form("102").sigma[0]) and prior.least_squares_form("102").sigma[1] == 0.03
    assert np.isinf(prior.least_squares_form("103").sigma[1]) and prior.least_squares_form("103").sigma[0] == 90.0
    assert np.isinf(prior.least_squares_form("104").sigma[1])


def test_table_string_ids_from_fits(tmp_path):
    prior = fitted(TablePrior(**table_params(_catalogue(tmp_path, "fits", ids=["a 1", "b2", "c3", "d4"]))))
    assert prior.stars_ == ["a 1", "b2", "c3", "d4"] and prior.least_squares_form("c3").mean[0] == 5300.0


def test_table_missing_star_flat_or_error(tmp_path):
    path = _catalogue(tmp_path)
    theta = np.array([[5000.0, 2.0, 0.0], [6000.0, 4.0, -1.0]])
    flat = fitted(TablePrior(**table_params(path)))
    for star in ("999", None):
        assert flat.log_prob(theta, star).tolist() == [0.0, 0.0]
        assert not flat.least_squares_form(star).has_gaussian.any()
    strict = fitted(TablePrior(**table_params(path, missing="error")))
    assert np.isfinite(strict.log_prob(theta, "101")).all()
    with pytest.raises(DataError, match=r"star '999': not in .*cat\.ecsv.*column 'source_id'"):
        strict.log_prob(theta, "999")
    with pytest.raises(DataError, match="no star id given"):
        strict.least_squares_form(None)
    with pytest.raises(DataError, match=r"star '102' has no usable mean and sigma \(> 0\) for Teff"):
        strict.log_prob(theta, "102")
    with pytest.raises(DataError, match="star '104' has no usable .* for logg"):
        strict.least_squares_form("104")


def test_stars_a_table_prior_does_not_know_are_counted_and_warned_about(tmp_path, caplog):
    """Found by a bad-input hunt: a table prior whose ids matched no star (mock00 against mock0)
    was dropped without a word: the labels were those of no prior."""
    from slamfw.workflows.infer import stars_without_prior, warn_stars_without_prior
    flat = fitted(TablePrior(**table_params(_catalogue(tmp_path))))
    assert stars_without_prior(flat, np.array(["101", "999", "998"])) == 2
    assert stars_without_prior(None, np.array(["999"])) == 0
    with caplog.at_level("WARNING"):
        warn_stars_without_prior(flat, 2, 3, "survey.fits")
    assert "survey.fits: 2 of the 3 stars have no prior of their own in the per-star prior (TablePrior" in caplog.text


def test_table_file_errors_name_the_file_and_column(tmp_path):
    path = _catalogue(tmp_path)
    with pytest.raises(DataError, match=r"file '.*nowhere\.ecsv' does not exist"):
        fitted(TablePrior(**table_params(str(tmp_path / "nowhere.ecsv"))))
    with pytest.raises(ConfigError,
                       match=r"columns\.Teff: '.*cat\.ecsv' has no column 'teff' \(its columns: source_id"):
        fitted(TablePrior(**table_params(path, columns={"Teff": ["teff", "e_teff"]})))
    with pytest.raises(ConfigError, match=r"id_column: '.*cat\.ecsv' has no column 'id'"):
        fitted(TablePrior(**{**table_params(path), "id_column": "id"}))
    with pytest.raises(ConfigError, match=r"columns\.Tef: no such label"):
        fitted(TablePrior(**table_params(path, columns={"Tef": ["teff_phot", "e_teff"]})))
    with pytest.raises(ConfigError, match=r"missing: Input should be 'flat' or 'error'"):
        TablePrior(**table_params(path, missing="skip"))
    broken = tmp_path / "broken.fits"
    broken.write_text("not a FITS file")
    with pytest.raises(DataError, match=r"cannot read '.*broken\.fits'"):
        fitted(TablePrior(**table_params(str(broken))))


def test_table_duplicate_ids_and_text_columns(tmp_path):
    with pytest.raises(DataError, match=r"the id '102' appears more than once in column 'source_id'"):
        fitted(TablePrior(**table_params(_catalogue(tmp_path, ids=[101, 102, 103, 102]))))
    t = Table({"id": ["x", "y"], "teff": ["hot", "cool"], "e": [1.0, 2.0]})
    t.write(tmp_path / "text.ecsv")
    with pytest.raises(DataError, match=r"column 'teff' \(columns\.Teff\) is not numeric"):
        fitted(TablePrior(path=str(tmp_path / "text.ecsv"), columns={"Teff": ["teff", "e"]}))


# ------------------------------------------------------------------------- registry and kit
def test_registered_and_reachable_by_name():
    for name, cls in (("uniform", UniformPrior), ("gaussian", GaussianPrior), ("table", TablePrior)):
        assert registry.lookup("prior", name).cls is cls
    assert KITS["prior"] is check_prior and [c.name for c in CHECKS["prior"]] == [
        "check_params", "check_fit", "check_vectorised", "check_finite_at_median", "check_form_shapes",
        "check_form_agrees", "check_per_star", "check_deterministic"]


def test_builtin_priors_pass_the_kit(tmp_path):
    cases = [(UniformPrior, {}), (UniformPrior, {"bounds": {"FeH": [-1.0, 0.0]}, "margin": 0.05}),
             (GaussianPrior, {"mean": {"Teff": 5000.0, "FeH": 0.0}, "sigma": {"Teff": 300.0, "FeH": 0.2},
                              "bounds": {"logg": [1.5, 4.5]}}),
             (TablePrior, table_params(_catalogue(tmp_path))),
             (TablePrior, table_params(_catalogue(tmp_path), missing="error"))]
    for cls, params in cases:
        results = check_prior(cls, params)
        assert [r.check for r in results] == [c.name for c in CHECKS["prior"]] and all(r.passed for r in results)
    assert check_component(UniformPrior(margin=0.2), raise_on_fail=False)[0].passed


def test_kit_checks_per_star_priors_at_stars_they_answer_for(tmp_path):
    path = _catalogue(tmp_path)
    assert prior_kit.PriorCase(TablePrior, table_params(path)).stars() == ["101", "102", "103"]
    # missing="error": 102-104 lack a usable Teff or logg and raise, so only 101 is used
    assert prior_kit.PriorCase(TablePrior, table_params(path, missing="error")).stars() == ["101"]
    assert prior_kit.PriorCase(UniformPrior, {}).stars() == [None]


def test_kit_notes_a_per_star_prior_without_stars(tmp_path):
    class NoStarList(TablePrior):
        def fit(self, train_labels, label_names):
            super().fit(train_labels, label_names)
            del self.stars_
            return self

    results = check_prior(NoStarList, table_params(_catalogue(tmp_path)))
    per_star = next(r for r in results if r.check == "check_per_star")
    assert per_star.passed and "no stars_ attribute" in per_star.message


# -------------------------------------------------------------- each check catches a broken prior
class BadParams(UniformPrior):
    def get_params(self, deep=True):
        return {"margin": self.margin}


class FitReturnsNone(UniformPrior):
    def fit(self, train_labels, label_names):
        super().fit(train_labels, label_names)


class FitSkipsSuper(UniformPrior):
    def fit(self, train_labels, label_names):
        UniformPrior.fit(self, train_labels, label_names)
        del self.label_names_
        return self


class FitSetsPlainAttribute(UniformPrior):
    def fit(self, train_labels, label_names):
        self.scale = 1.0
        return super().fit(train_labels, label_names)


class FirstRowOnly(GaussianPrior):
    """Not vectorised: every walker gets the first walker's value."""

    def log_prob(self, theta, star=None):
        values = super().log_prob(theta)
        return np.full(values.shape, values[0])


class TwoDimensional(GaussianPrior):
    def log_prob(self, theta, star=None):
        return super().log_prob(theta)[:, None]


class TwiceTheForm(GaussianPrior):
    """log_prob with sigma / sqrt(2): disagrees with the least-squares form it gives lm."""

    def log_prob(self, theta, star=None):
        return 2.0 * super().log_prob(theta)


class FlatEverywhere(UniformPrior):
    """Forgets the box in log_prob."""

    def log_prob(self, theta, star=None):
        return np.zeros(np.atleast_2d(theta).shape[0])


class ZeroSigma(UniformPrior):
    def least_squares_form(self, star=None):
        form = super().least_squares_form()
        return LeastSquaresForm(mean=form.mean, sigma=np.zeros_like(form.sigma), lo=form.lo, hi=form.hi)


class StarDependent(UniformPrior):
    """per_star False, but the star changes the answer."""

    def log_prob(self, theta, star=None):
        return super().log_prob(theta) - (0.0 if star is None else 1.0)


class UnknownStarKeyError(TablePrior):
    def _star_row(self, star):
        if star is not None and str(star) not in self.row_:
            raise KeyError(star)
        return super()._star_row(star)


class Jittery(GaussianPrior):
    """The fit draws its mean at random: not reproducible."""

    def fit(self, train_labels, label_names):
        super().fit(train_labels, label_names)
        self.mean_ = self.mean_ + np.where(np.isfinite(self.mean_), np.random.default_rng().normal(size=3), 0.0)
        return self


GAUSS = {"mean": {"Teff": 5000.0, "logg": 3.0}, "sigma": {"Teff": 500.0, "logg": 1.0}}


#: what else a broken prior fails, legitimately (a non-vectorised log_prob cannot agree with its form)
ALSO_FAILS = {FirstRowOnly: ["check_form_agrees"], TwoDimensional: ["check_form_agrees"]}


@pytest.mark.parametrize("cls,params,check,message", [
    (BadParams, {}, "check_params", "differ from the Params fields"),
    (FitReturnsNone, {}, "check_fit", "fit must return self"),
    (FitSkipsSuper, {}, "check_fit", "call super().fit"),
    (FitSetsPlainAttribute, {}, "check_fit", "fit set attributes ['scale']"),
    (FirstRowOnly, GAUSS, "check_vectorised", "of that row alone"),
    (TwoDimensional, GAUSS, "check_vectorised", "expected (41,)"),
    (UniformPrior, {"bounds": {"Teff": [6500.0, 9000.0]}}, "check_finite_at_median", "is [-inf]"),
    (ZeroSigma, {}, "check_form_shapes", "form.sigma must be > 0"),
    (TwiceTheForm, GAUSS, "check_form_agrees", "but the form's Gaussian terms give"),
    (FlatEverywhere, {}, "check_form_agrees", "is outside the form's box but log_prob is 0.0"),
    (StarDependent, {}, "check_per_star", "depends on the star id"),
    (UnknownStarKeyError, "table", "check_per_star", "KeyError"),
    (Jittery, GAUSS, "check_deterministic", "a fresh instance gives other log_prob values"),
])
def test_each_check_catches_a_broken_prior(cls, params, check, message, tmp_path):
    if params == "table":
        params = table_params(_catalogue(tmp_path))
    results = {r.check: r for r in check_prior(cls, params, raise_on_fail=False)}
    failed = sorted(name for name, r in results.items() if not r.passed)
    assert check in failed and message in results[check].message, results[check]
    assert failed == sorted([check, *ALSO_FAILS.get(cls, [])]), f"{cls.__name__} should fail only {check}: {failed}"
    with pytest.raises(ComponentCheckError, match=check):        # each check alone, as a function
        getattr(prior_kit, check)(cls, params)


def test_a_prior_without_least_squares_form_passes_with_notes():
    class Laplace(Prior):
        class Params(Params):
            pass

        def fit(self, train_labels, label_names):
            super().fit(train_labels, label_names)
            self.center_ = np.median(train_labels, axis=0)
            return self

        def log_prob(self, theta, star=None):
            return -np.abs(np.atleast_2d(theta) - self.center_).sum(axis=1)

    results = check_prior(Laplace)
    assert all(r.passed for r in results)
    assert "least_squares_form is None" in next(r.message for r in results if r.check == "check_form_agrees")


# ------------------------------------------------------------------------------------------ CLI
def test_cli_check_plugin_prior(capsys, tmp_path):
    n = len(CHECKS["prior"])
    assert main(["check-plugin", "prior", "uniform"]) == 0
    out = capsys.readouterr().out
    assert out.count("  PASS  ") == n and f"{n} passed, 0 failed" in out
    path = _catalogue(tmp_path)
    assert main(["check-plugin", "prior", "table", "--param", f"path={path}", "--param", "id_column=source_id",
                 "--param", 'columns={"Teff": ["teff_phot", "e_teff"]}']) == 0
    assert f"{n} passed, 0 failed" in capsys.readouterr().out
    assert main(["check-plugin", "prior", "gaussian", "--param", "margin=1"]) == 2
    assert "margin: unknown key" in capsys.readouterr().err
