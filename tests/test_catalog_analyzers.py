import numpy as np
import pytest
from astropy.table import Table

from slamfw import AnalysisContext, LabelResult, SpectralSet, registry
from slamfw.data.catalog import make_catalog, write_catalog
from slamfw.stats.metrics import bias_scatter, robust_scatter


def result(n=6):
    rng = np.random.default_rng(0)
    labels = rng.normal(size=(n, 2))
    cov = np.tile(np.diag([4.0, 0.25]), (n, 1, 1))
    return LabelResult(labels=labels, cov=cov, converged=np.array([True] * (n - 1) + [False]),
                       rmse=np.full(n, 0.01), chi2=np.full(n, 1.1), init=labels + 1, label_names=["Teff", "logg"],
                       nfev=np.full(n, 5))


def test_catalog_columns_and_formats(tmp_path):
    res = result()
    res.errors_calibrated = res.errors * 3.0
    res.extra.update(flag_chi2=np.arange(6) == 2, snr_spec=np.full(6, 50.0), p16=res.labels - 1,
                     acceptance=np.full(6, 0.4))
    res.extra_units["p16"] = "label"
    t = make_catalog([f"s{i}" for i in range(6)], res, ["K", "dex"], snr=np.arange(6.0), true_labels=res.labels * 0,
                     ra=np.arange(6.0), dec=-np.arange(6.0))
    expected = ["id", "ra", "dec", "Teff", "Teff_err", "Teff_err_formal", "logg", "logg_err", "logg_err_formal",
                "converged", "flag_extrapolated", "flag_bound", "flag_chi2", "flag_chi2_train", "flag_coverage",
                "flag_rv", "rmse", "chi2", "snr", "snr_spec", "grid_coverage",
                "acceptance", "Teff_p16", "logg_p16", "Teff_init", "logg_init", "Teff_true", "logg_true",
                "label_distance"]
    assert t.colnames == expected
    np.testing.assert_allclose(t["Teff_err"], 6.0)        # the calibrated error is the one to use
    np.testing.assert_allclose(t["Teff_err_formal"], 2.0)
    np.testing.assert_allclose(t["logg_err_formal"], 0.5)
    np.testing.assert_allclose(t["label_distance"], (res.labels[:, 0] / 100) ** 2 + (res.labels[:, 1] / 0.2) ** 2)
    assert t["flag_chi2"].tolist() == [False, False, True, False, False, False]
    for suffix in ("fits", "ecsv"):
        path = write_catalog(t, tmp_path / f"cat.{suffix}")
        back = Table.read(path)
        assert back.colnames == expected and len(back) == 6
        np.testing.assert_allclose(back["Teff"], res.labels[:, 0])
        assert back["converged"].tolist() == res.converged.tolist()
        # units on every labelled column, dex included, in FITS as in ECSV
        for col in ("logg", "logg_err", "logg_err_formal", "logg_p16", "logg_init", "logg_true"):
            assert str(back[col].unit) == "dex", (suffix, col, back[col].unit)
        for col in ("Teff", "Teff_err", "Teff_true"):
            assert str(back[col].unit) == "K", (suffix, col)
        assert str(back["ra"].unit) == "deg" and back["acceptance"].unit is None
    assert str(t["logg"].unit) == "dex"                      # writing left the table's own units alone


def test_bias_scatter_eq_9_10():
    pred = np.array([[1.0], [2.0], [4.0]])
    true = np.zeros((3, 1))
    bias, scatter = bias_scatter(pred, true)
    assert bias[0] == 7 / 3
    np.testing.assert_allclose(scatter[0], np.std([1.0, 2.0, 4.0]))
    # robust scatter ignores one gross outlier that dominates the standard deviation
    rng = np.random.default_rng(3)
    d = rng.normal(0, 1.0, (2000, 1))
    d[0] = 1e4
    assert abs(robust_scatter(d, np.zeros_like(d))[0] - 1.0) < 0.08 and bias_scatter(d, np.zeros_like(d))[1][0] > 100


def test_cv_scatter_analyzer_per_snr_bin():
    n = 40
    rng = np.random.default_rng(1)
    true = rng.normal(size=(n, 2))
    snr = np.repeat([20.0, 100.0], n // 2)
    noise = rng.normal(size=(n, 2)) * np.where(snr == 20, 1.0, 0.1)[:, None]
    res = LabelResult(labels=true + noise + 0.5, cov=np.zeros((n, 2, 2)), converged=np.ones(n, bool),
                      rmse=np.zeros(n), chi2=np.zeros(n), init=true, label_names=["a", "b"])
    test = SpectralSet(wave=np.arange(3.0), flux=np.ones((n, 3)), ivar=np.ones((n, 3)), ids=range(n), labels=true,
                       label_names=["a", "b"], meta={"snr": snr})
    rep = registry.create("analyzer", "cv-scatter").analyze(AnalysisContext(["a", "b"], ["", ""], test=test, result=res))
    table = next(iter(rep.tables.values()))
    assert table["snr_bin"].tolist() == ["all", "20", "100"]
    np.testing.assert_allclose(table["a_bias"][1], (noise[:20, 0] + 0.5).mean())
    np.testing.assert_allclose(table["a_scatter"][2], noise[20:, 0].std())
    assert table["a_scatter"][1] > 5 * table["a_scatter"][2]
    md = rep.to_markdown()
    assert "| snr_bin | n |" in md and "a_scatter" in md


@pytest.mark.parametrize("star", ["p", "α Cen "])
@pytest.mark.parametrize("rows_per_write", [3, 20_000])
def test_streamed_catalogue_of_unlike_parts_is_the_parts_tables_stacked(tmp_path, monkeypatch, rows_per_write, star):
    """Parts of one catalogue that hold different arrays (calibrated errors in some, posterior
    samples in others: a run resumed with another setting) are joined only with parts like them;
    the file is the one of each part's own table stacked, as the parts were written before they
    were joined (FITS and ECSV). Ids beyond ASCII in one part ('α Cen'; FITS had an internal
    error, after the whole inference) are written as UTF-8, as wide in every part, and read back."""
    from astropy.table import vstack

    from slamfw.data import catalog
    from slamfw.data.catalog import write_catalog_parts
    monkeypatch.setattr(catalog, "ROWS_PER_WRITE", rows_per_write)
    rng = np.random.default_rng(5)
    parts, tables = [], []
    for k, n in enumerate((4, 3, 5, 2)):
        res = result(n)
        if k in (1, 2):
            res.errors_calibrated = res.errors * 2.0
        if k == 2:
            res.samples = rng.normal(size=(n, 7, 2))
        part = {key: v for key, v in res.to_arrays().items()}
        part["ids"] = np.array([f"{star if k == 2 else 'p'}{k}-{i}" for i in range(n)])
        part["snr"] = rng.uniform(10, 100, n)
        parts.append(part)
        tables.append(make_catalog(part["ids"], res, ["K", "dex"], snr=part["snr"]))
    whole = vstack(tables, join_type="exact", metadata_conflicts="silent")
    whole.meta = tables[0].meta
    for suffix in ("fits", "ecsv"):
        write_catalog(whole, tmp_path / f"whole.{suffix}")
        write_catalog_parts(lambda: iter(parts), ["K", "dex"], tmp_path / f"parts.{suffix}")
        assert (tmp_path / f"parts.{suffix}").read_bytes() == (tmp_path / f"whole.{suffix}").read_bytes(), suffix
        back = Table.read(tmp_path / f"parts.{suffix}")
        assert [str(i) for i in back["id"]] == whole["id"].tolist(), suffix


def test_parts_of_other_columns_make_no_catalogue(tmp_path):
    """Parts whose columns differ (an inferer's extra in some only) are refused with an error
    naming the column, not written under the first part's header."""
    from slamfw import DataError
    from slamfw.data.catalog import write_catalog_parts
    parts = []
    for k in range(2):
        res = result(3)
        if k:
            res.extra["acceptance"] = np.full(3, 0.4)
        part = dict(res.to_arrays(), ids=np.array([f"q{k}-{i}" for i in range(3)]), snr=np.full(3, 50.0))
        parts.append(part)
    for suffix in ("fits", "ecsv"):
        with pytest.raises(DataError, match="acceptance"):
            write_catalog_parts(lambda: iter(parts), ["K", "dex"], tmp_path / f"c.{suffix}")
        assert not (tmp_path / f"c.{suffix}").exists()


def test_cv_scatter_without_truth():
    res = result()
    test = SpectralSet(wave=np.arange(3.0), flux=np.ones((6, 3)), ivar=np.ones((6, 3)), ids=range(6))
    rep = registry.create("analyzer", "cv-scatter").analyze(AnalysisContext(["Teff", "logg"], ["K", "dex"], test=test, result=res))
    assert not rep.tables and "no true labels" in rep.notes[0]


@pytest.mark.parametrize("rows_per_write", [1, 5, 20_000])
def test_streamed_catalogue_is_the_same_file(tmp_path, monkeypatch, rows_per_write):
    """Parts written one at a time give the file of the whole catalogue written at once, byte for
    byte (FITS and ECSV), with ids of different widths and an empty part among them, whether the
    parts are converted one by one or joined (``ROWS_PER_WRITE``)."""
    from slamfw.data import catalog
    from slamfw.data.catalog import write_catalog_parts
    monkeypatch.setattr(catalog, "ROWS_PER_WRITE", rows_per_write)
    rng = np.random.default_rng(3)
    parts, ids = [], []
    for k, n in enumerate((4, 0, 7, 2)):
        res = result(max(n, 1))
        part = {k2: v[:n] for k2, v in res.to_arrays().items() if k2 != "label_names"}
        part["label_names"] = np.asarray(res.label_names)
        part["ids"] = np.array([f"s{k}-{'x' * i}{i}" for i in range(n)])
        part["snr"] = rng.uniform(10, 100, n)
        part["true_labels"] = rng.normal(size=(n, 2))
        parts.append(part if n else {"ids": np.zeros(0, dtype=str)})
        ids += part["ids"].tolist()
    full = [p for p in parts if p["ids"].size]
    whole = LabelResult.concatenate([LabelResult.from_arrays(p) for p in full])
    table = make_catalog(np.array(ids), whole, ["K", "dex"], snr=np.concatenate([p["snr"] for p in full]),
                         true_labels=np.concatenate([p["true_labels"] for p in full]))
    for suffix in ("fits", "ecsv"):
        write_catalog(table, tmp_path / f"whole.{suffix}")
        path, n, n_conv = write_catalog_parts(lambda: iter(parts), ["K", "dex"], tmp_path / f"parts.{suffix}")
        assert (n, n_conv) == (13, int(table["converged"].sum()))
        assert path.read_bytes() == (tmp_path / f"whole.{suffix}").read_bytes(), suffix
