"""slamfw convert and the spectra table format: any reader's spectra written and read back."""
import astropy.units as u
import numpy as np
import pytest
from astropy.table import Table

from slamfw import DataError, SpectralSet, registry
from slamfw.cli import main
from slamfw.data.spectra_io import write_spectra_table


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".npz"])
def test_convert_lamost_round_trip(lamost_dir, tmp_path, suffix, capsys):
    out = tmp_path / f"lamost{suffix}"
    rc = main(["convert", "--reader", "lamost", "--data", str(lamost_dir), "-o", str(out),
               "--reader-param", f"labels={lamost_dir / 'labels_dr10_lasp.csv'}"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "10 spectra" in printed and "a grid per star" in printed and "rejected" in printed
    rejected = Table.read(tmp_path / "lamost-rejected.csv", format="ascii.csv")
    assert len(rejected) == 1 and "med-58625" in rejected["file"][0] and "MRS" in rejected["reason"][0]
    orig = registry.create("reader", "lamost", {"path": str(lamost_dir),
                                                "labels": str(lamost_dir / "labels_dr10_lasp.csv")}).read()
    back = registry.create("reader", "table", {"path": str(out)}).read()
    assert back.ids.tolist() == orig.ids.tolist() and back.medium == "vacuum" and back.per_star_grid
    np.testing.assert_array_equal(back.wave, orig.wave)
    np.testing.assert_array_equal(back.flux, orig.flux)
    np.testing.assert_array_equal(back.ivar, orig.ivar)
    np.testing.assert_array_equal(back.mask, orig.mask)
    assert back.label_names == ["Teff", "logg", "FeH"]
    np.testing.assert_array_equal(back.labels, orig.labels)          # NaN where the catalogue has no star
    np.testing.assert_array_equal(back.meta["rv"], orig.meta["rv"])   # NaN for the failed redshift


def test_convert_checks_the_output_before_reading(tmp_path, capsys):
    rc = main(["convert", "--reader", "lamost", "--data", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.csv")])
    assert rc == 2 and "spectra tables are .fits" in capsys.readouterr().err


def _small_set(medium="air"):
    wave = np.linspace(5000.0, 5010.0, 11)
    return SpectralSet(wave=wave, flux=np.ones((2, 11)), ivar=np.ones((2, 11)), ids=["a", "b"],
                       labels=[[5000.0], [6000.0]], label_names=["Teff"], label_units=["K"], medium=medium)


@pytest.mark.parametrize("unit, factor", [("nm", 10.0), ("um", 1e4), ("Angstrom", 1.0)])
def test_wavelength_unit_comes_from_the_column(tmp_path, unit, factor):
    t = Table()
    t["wave"] = (np.linspace(5000.0, 5010.0, 11) / factor) * u.Unit(unit)
    t["flux"] = np.ones((1, 11))
    t["ivar"] = np.ones((1, 11))
    t["Teff"] = [5500.0]
    t.write(tmp_path / "s.fits")
    ss = registry.create("reader", "table", {"path": str(tmp_path / "s.fits"), "wave_unit": "um"}).read()
    np.testing.assert_allclose(ss.wave, np.linspace(5000.0, 5010.0, 11))   # the column's unit wins


def test_wavelength_unit_parameter_only_without_a_unit(tmp_path):
    t = Table({"wave": np.linspace(500.0, 501.0, 11)[None], "flux": np.ones((1, 11)), "ivar": np.ones((1, 11))})
    t.write(tmp_path / "s.ecsv")
    ss = registry.create("reader", "table", {"path": str(tmp_path / "s.ecsv"), "wave_unit": "nm"}).read()
    np.testing.assert_allclose(ss.wave, np.linspace(5000.0, 5010.0, 11))
    t["wave"].unit = u.s
    t.write(tmp_path / "bad.ecsv")
    with pytest.raises(DataError, match="not a length"):
        registry.create("reader", "table", {"path": str(tmp_path / "bad.ecsv")}).read()


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".npz"])
def test_medium_and_labels_travel_with_the_file(tmp_path, suffix):
    path = write_spectra_table(_small_set("air"), tmp_path / f"s{suffix}")
    ss = registry.create("reader", "table", {"path": str(path), "medium": "vacuum"}).read()
    assert ss.medium == "air"                        # the file's MEDIUM wins over the parameter
    assert ss.label_names == ["Teff"] and ss.label_units == ["K"] and not ss.per_star_grid


@pytest.mark.parametrize("suffix", [".fits", ".ecsv", ".npz"])
def test_star_ids_beyond_ascii_travel_with_the_file(tmp_path, suffix):
    """Ids such as 'α Cen A' are written (FITS: as UTF-8; astropy's ASCII failed) and read back."""
    ss = _small_set()
    ss.ids = np.array(["α Cen A", "b"])
    path = write_spectra_table(ss, tmp_path / f"s{suffix}")
    assert registry.create("reader", "table", {"path": str(path)}).read().ids.tolist() == ["α Cen A", "b"]


def test_convert_refuses_to_replace_a_file(lamost_dir, tmp_path, capsys):
    out = tmp_path / "mine.fits"
    out.write_text("my own file")
    rc = main(["convert", "--reader", "lamost", "--data", str(lamost_dir), "-o", str(out)])
    assert rc == 2 and "--force" in capsys.readouterr().err and out.read_text() == "my own file"
    (tmp_path / "mine-rejected.csv").write_text("a,b\n")           # not slamfw's: replaced only with --force
    rc = main(["convert", "--reader", "lamost", "--data", str(lamost_dir), "-o", str(tmp_path / "mine.ecsv")])
    err = capsys.readouterr().err
    assert rc == 2 and "mine-rejected.csv" in err and "not written by slamfw" in err
    assert (tmp_path / "mine-rejected.csv").read_text() == "a,b\n" and not (tmp_path / "mine.ecsv").exists()
    rc = main(["convert", "--reader", "lamost", "--data", str(lamost_dir), "-o", str(out), "--force"])
    assert rc == 0
    assert len(Table.read(out, format="fits")) > 0                    # the output was replaced
    assert (tmp_path / "mine-rejected.csv").read_text().startswith("set,file,reason")


def test_predict_streams_many_files_on_worker_processes(lamost_dir, tmp_path):
    """More files than --chunk-size, read by a FileReader while local worker processes infer: the
    pieces are read in this process (an executor's task stream must not start tasks of its own)."""
    import subprocess
    import sys

    from .test_unlike_training import CONFIG
    (tmp_path / "exp.toml").write_text(CONFIG.format(out=tmp_path / "out"))
    assert main(["train", str(tmp_path / "exp.toml")]) == 0
    cmd = [sys.executable, "-m", "slamfw.cli", "predict", str(tmp_path / "out" / "model.npz"), "--reader", "lamost",
           "--data", str(lamost_dir), "--chunk-size", "3", "--executor", "local", "--workers", "2",
           "-o", str(tmp_path / "lamost.ecsv")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    t = Table.read(tmp_path / "lamost.ecsv")
    rejected = Table.read(tmp_path / "lamost-rejected.csv", format="ascii.csv")
    assert len(t) + sum(str(f).startswith("star ") for f in rejected["file"]) == 10     # every LRS star accounted for
    assert any("med-58625" in str(f) for f in rejected["file"])
    # the file whose redshift failed (Z = -9999, sp11-177, OBSID 78911177) is fitted unshifted: flag_rv, alone
    assert "78911177" in t["id"] and t["id"][t["flag_rv"]].tolist() == ["78911177"]
