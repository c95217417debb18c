"""specutils interoperability: SpectralSet <-> specutils.Spectrum, and the ``specutils`` reader."""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from slamfw import DataError, SpectralSet, registry
from slamfw.data.specutils_io import spectral_set_from_spectra, spectral_set_to_spectra

import specutils  # noqa: E402 - in the [test] extra: a missing specutils fails here, never skips
u = pytest.importorskip("astropy.units")
from astropy.io import fits  # noqa: E402
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty  # noqa: E402

from slamfw_plugins.readers.specutils_reader import SpecutilsReader  # noqa: E402

Spectrum = specutils.Spectrum


def _set(per_star: bool = False) -> SpectralSet:
    """Three stars with bad pixels, labels, metadata (numeric and text) and a medium."""
    rng = np.random.default_rng(3)
    wave = np.linspace(5000.0, 5100.0, 40)
    flux = 1 + 0.01 * rng.normal(size=(3, 40))
    ivar = rng.uniform(100, 200, size=(3, 40))
    ivar[0, 5] = 0.0
    mask = np.ones((3, 40), bool)
    mask[1, 7] = mask[2, [0, 39]] = False
    ss = SpectralSet(wave=wave, flux=flux, ivar=ivar, ids=["a", "b", "c"], mask=mask,
                     labels=[[5000.0, 4.5], [5500.0, np.nan], [6000.0, 2.5]], label_names=["Teff", "logg"],
                     label_units=["K", "dex"],
                     meta={"snr": np.array([10.0, 20.0, 30.0]), "rv": np.array([0.0, 12.5, -3.0]),
                           "ra": np.array([1.0, 2.0, 3.0]), "dec": np.array([-1.0, -2.0, -3.0]),
                           "field": np.array(["f1", "f2", "f3"])},
                     source="test", medium="vacuum")
    if not per_star:
        return ss
    other = SpectralSet(wave=np.linspace(4990.0, 5080.0, 31), flux=np.ones((1, 31)), ivar=np.full((1, 31), 4.0),
                        ids=["d"], labels=[[4000.0, 1.0]], label_names=["Teff", "logg"], label_units=["K", "dex"],
                        meta={"snr": np.array([5.0]), "rv": np.array([1.0]), "ra": np.array([4.0]),
                              "dec": np.array([-4.0]), "field": np.array(["f4"])}, medium="vacuum")
    return SpectralSet.stack([ss, other], source="test")


def _assert_same(a: SpectralSet, b: SpectralSet) -> None:
    assert a.ids.tolist() == b.ids.tolist()
    assert a.wave.shape == b.wave.shape and np.array_equal(a.wave, b.wave)
    for name in ("flux", "ivar", "mask"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.label_names == b.label_names and a.label_units == b.label_units
    assert np.array_equal(a.labels, b.labels, equal_nan=True)
    assert sorted(a.meta) == sorted(b.meta)
    for k in a.meta:
        assert np.array_equal(a.meta[k], b.meta[k]), k
    assert a.medium == b.medium


# ----------------------------------------------------------------------------------- round trips
def test_set_to_spectra_to_set_common_grid():
    ss = _set()
    spectra = spectral_set_to_spectra(ss)
    assert len(spectra) == 3 and all(isinstance(s, Spectrum) for s in spectra)
    s1 = spectra[1]
    assert s1.meta["id"] == "b" and s1.meta["labels"]["Teff"] == 5500.0 and s1.meta["medium"] == "vacuum"
    assert s1.meta["field"] == "f2" and s1.meta["snr"] == 20.0
    assert isinstance(s1.uncertainty, InverseVariance) and np.array_equal(s1.uncertainty.array, ss.ivar[1])
    assert s1.spectral_axis.unit == u.AA and s1.flux.unit == u.dimensionless_unscaled
    assert s1.radial_velocity.to_value(u.km / u.s) == pytest.approx(12.5)
    # mask polarity: the pixel bad in slamfw (mask False) is True (bad) in specutils, and nothing else
    assert s1.mask.dtype == bool and s1.mask[7] and s1.mask.sum() == 1
    assert spectra[2].mask[0] and spectra[2].mask[39] and not spectra[0].mask.any()
    back = spectral_set_from_spectra(spectra, source="test")
    _assert_same(ss, back)
    assert back.wave.ndim == 1 and not back.mask[1, 7]


def test_set_to_spectra_to_set_per_star_grid_keeps_padding_masked():
    ss = _set(per_star=True)
    assert ss.per_star_grid and ss.wave.shape == (4, 40)
    spectra = spectral_set_to_spectra(ss, flux_unit="erg / (s cm2 Angstrom)")
    assert spectra[3].flux.unit == u.Unit("erg / (s cm2 Angstrom)")
    assert spectra[3].flux.shape == (40,) and spectra[3].mask[31:].all() and not spectra[3].mask[:31].any()
    back = spectral_set_from_spectra(spectra)
    _assert_same(ss, back)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_spectra_to_set_to_spectra():
    sigma = np.array([0.1, 0.2, np.inf, 0.1, 0.5])
    orig = Spectrum(flux=np.array([1.0, 2.0, 3.0, 4.0, 5.0]) * u.Jy, spectral_axis=np.arange(5.0) * u.nm + 500 * u.nm,
                    uncertainty=StdDevUncertainty(sigma), mask=np.array([False, True, False, False, False]),
                    meta={"id": "star1", "snr": 42.0})
    ss = spectral_set_from_spectra(orig)
    assert ss.ids.tolist() == ["star1"] and ss.meta["snr"].tolist() == [42.0]
    assert np.allclose(ss.wave, np.arange(5000.0, 5050.0, 10.0))
    assert ss.mask.tolist() == [[True, False, True, True, True]]
    back = spectral_set_to_spectra(ss, flux_unit=u.Jy)[0]
    assert np.array_equal(back.flux, orig.flux)
    assert np.array_equal(back.mask, orig.mask)
    assert np.allclose(back.spectral_axis.to_value(u.nm), orig.spectral_axis.to_value(u.nm))
    assert np.allclose(back.uncertainty.represent_as(StdDevUncertainty).array[[0, 1, 3, 4]], sigma[[0, 1, 3, 4]])
    assert back.uncertainty.array[2] == 0.0   # infinite sigma: no information


# ------------------------------------------------------------------------------------ conversions
def test_mask_polarity_bool_and_integer_bitmask():
    flux = np.ones(4) * u.dimensionless_unscaled
    axis = np.arange(4000.0, 4004.0) * u.AA
    bool_mask = spectral_set_from_spectra(Spectrum(flux=flux, spectral_axis=axis,
                                                   mask=np.array([True, False, False, True])))
    assert bool_mask.mask.tolist() == [[False, True, True, False]]
    bits = spectral_set_from_spectra(Spectrum(flux=flux, spectral_axis=axis, mask=np.array([0, 4, 0, 1024])))
    assert bits.mask.tolist() == [[True, False, True, False]]      # any bit set = bad
    none = spectral_set_from_spectra(Spectrum(flux=flux, spectral_axis=axis))
    assert none.mask.all()


def test_nm_axis_becomes_angstrom():
    sp = Spectrum(flux=np.arange(3.0) * u.Jy, spectral_axis=[500.0, 500.1, 500.2] * u.nm,
                  uncertainty=InverseVariance(np.ones(3)))
    ss = spectral_set_from_spectra(sp)
    assert np.allclose(ss.wave, [5000.0, 5001.0, 5002.0])


def test_descending_axis_is_sorted_with_flux_ivar_and_mask():
    sp = Spectrum(flux=np.array([1.0, 2.0, 3.0, 4.0]) * u.Jy, spectral_axis=[6003.0, 6002.0, 6001.0, 6000.0] * u.AA,
                  uncertainty=VarianceUncertainty(np.array([1.0, 2.0, 4.0, 8.0])),
                  mask=np.array([True, False, False, False]))
    ss = spectral_set_from_spectra(sp)
    assert ss.wave.tolist() == [6000.0, 6001.0, 6002.0, 6003.0]
    assert ss.flux.tolist() == [[4.0, 3.0, 2.0, 1.0]]
    assert ss.ivar.tolist() == [[0.125, 0.25, 0.5, 1.0]]
    assert ss.mask.tolist() == [[True, True, True, False]]


def test_frequency_axis_becomes_increasing_wavelength():
    c = 2.99792458e18                                          # Angstrom / s
    nu = c / np.array([5000.0, 5001.0, 5002.0])[::-1]           # increasing frequency = decreasing wavelength
    sp = Spectrum(flux=np.array([1.0, 2.0, 3.0]) * u.Jy, spectral_axis=nu * u.Hz)
    ss = spectral_set_from_spectra(sp)
    assert np.allclose(ss.wave, [5000.0, 5001.0, 5002.0]) and ss.flux.tolist() == [[3.0, 2.0, 1.0]]


def test_non_spectral_axis_is_a_data_error():
    sp = Spectrum(flux=np.ones(3) * u.Jy, spectral_axis=np.arange(3.0) * u.pix)
    with pytest.raises(DataError, match="spectral axis"):
        spectral_set_from_spectra(sp)


@pytest.mark.parametrize("uncertainty", [StdDevUncertainty(np.array([0.5, 0.25, 0.1])),
                                         VarianceUncertainty(np.array([0.25, 0.0625, 0.01])),
                                         InverseVariance(np.array([4.0, 16.0, 100.0]))],
                         ids=["stddev", "variance", "ivar"])
def test_uncertainty_kinds(uncertainty):
    sp = Spectrum(flux=np.ones(3) * u.Jy, spectral_axis=[1.0, 2.0, 3.0] * u.um, uncertainty=uncertainty)
    assert np.allclose(spectral_set_from_spectra(sp).ivar, [[4.0, 16.0, 100.0]])


def test_unusable_uncertainty_gives_ivar_zero():
    sp = Spectrum(flux=np.ones(5) * u.Jy, spectral_axis=np.arange(1.0, 6.0) * u.um,
                  uncertainty=StdDevUncertainty(np.array([0.5, 0.0, -1.0, np.nan, np.inf])))
    ss = spectral_set_from_spectra(sp)
    assert ss.ivar.tolist() == [[4.0, 0.0, 0.0, 0.0, 0.0]] and ss.mask.all()


def test_uncertainty_in_another_unit_is_converted_to_the_flux_unit():
    sp = Spectrum(flux=np.ones(2) * u.Jy, spectral_axis=[1.0, 2.0] * u.um,
                  uncertainty=StdDevUncertainty(np.array([100.0, 200.0]) * u.mJy))
    assert np.allclose(spectral_set_from_spectra(sp).ivar, [[100.0, 25.0]])


def test_no_uncertainty_gives_ivar_one_and_a_warning(caplog):
    sp = Spectrum(flux=np.ones(3) * u.Jy, spectral_axis=[1.0, 2.0, 3.0] * u.um)
    with caplog.at_level(logging.WARNING, logger="slamfw.data.specutils_io"):
        ss = spectral_set_from_spectra(sp)
    assert ss.ivar.tolist() == [[1.0, 1.0, 1.0]]
    assert "without a (usable) uncertainty" in caplog.text


def test_nan_flux_becomes_zero_with_ivar_zero_and_bad():
    sp = Spectrum(flux=np.array([1.0, np.nan, 3.0]) * u.Jy, spectral_axis=[1.0, 2.0, 3.0] * u.um,
                  uncertainty=InverseVariance(np.array([1.0, 1.0, 1.0])))
    ss = spectral_set_from_spectra(sp)
    assert ss.flux.tolist() == [[1.0, 0.0, 3.0]] and ss.ivar.tolist() == [[1.0, 0.0, 1.0]]
    assert ss.mask.tolist() == [[True, False, True]]


def test_two_dimensional_flux_shares_one_grid():
    flux = np.arange(12.0).reshape(3, 4) * u.Jy
    axis = np.linspace(4000.0, 4003.0, 4) * u.AA
    ss = spectral_set_from_spectra(Spectrum(flux=flux, spectral_axis=axis, spectral_axis_index=1,
                                            meta={"OBJID": "M67"}))
    assert ss.wave.shape == (4,) and ss.flux.shape == (3, 4)
    assert ss.ids.tolist() == ["M67/0", "M67/1", "M67/2"]
    listed = spectral_set_from_spectra(Spectrum(flux=flux, spectral_axis=axis, spectral_axis_index=1,
                                                meta={"id": ["x", "y", "z"], "snr": [1.0, 2.0, 3.0]}))
    assert listed.ids.tolist() == ["x", "y", "z"] and listed.meta["snr"].tolist() == [1.0, 2.0, 3.0]
    # spectral axis first (pixels x spectra): rows are still the spectra, uncertainty and mask too
    sigma = np.arange(1.0, 13.0).reshape(4, 3)
    mask = np.zeros((4, 3), bool)
    mask[2, 1] = True
    first = spectral_set_from_spectra(Spectrum(flux=flux.reshape(4, 3), spectral_axis=axis, spectral_axis_index=0,
                                               uncertainty=StdDevUncertainty(sigma), mask=mask))
    assert np.array_equal(first.flux, flux.value.reshape(4, 3).T)
    assert np.allclose(first.ivar, 1 / sigma.T ** 2) and first.mask.tolist()[1] == [True, True, False, True]


def test_ids_from_header_fallback_and_repeats():
    axis = np.array([1.0, 2.0]) * u.um
    header = fits.Header({"OBJID": "2M0001", "RA": 10.5, "DEC": "+20:00:00"})
    a = Spectrum(flux=np.ones(2) * u.Jy, spectral_axis=axis, meta={"header": header})
    b = Spectrum(flux=np.ones(2) * u.Jy, spectral_axis=axis, meta={"header": header})
    c = Spectrum(flux=np.ones(2) * u.Jy, spectral_axis=axis)
    ss = spectral_set_from_spectra([a, b, c], source="/data/night1.fits")
    assert ss.ids.tolist() == ["2M0001/0", "2M0001/1", "night1-2"]
    assert ss.meta["ra"][:2].tolist() == [10.5, 10.5] and np.isnan(ss.meta["ra"][2])
    assert "dec" not in ss.meta                                 # a sexagesimal string is not used
    assert spectral_set_from_spectra([a, c], ids=["p", "q"]).ids.tolist() == ["p", "q"]
    with pytest.raises(DataError, match="2 ids for 3 spectra"):
        spectral_set_from_spectra([a, b, c], ids=["p", "q"])
    with pytest.raises(DataError, match="not a specutils Spectrum"):
        spectral_set_from_spectra([a, "b"])


def test_rv_from_radial_velocity_and_medium_from_meta():
    sp = Spectrum(flux=np.ones(3) * u.Jy, spectral_axis=[1.0, 2.0, 3.0] * u.um, radial_velocity=30 * u.km / u.s,
                  meta={"medium": "air"})
    ss = spectral_set_from_spectra(sp)
    assert ss.meta["rv"].tolist() == [30.0] and ss.medium == "air"
    assert spectral_set_from_spectra(sp, medium="vacuum").medium == "vacuum"


@pytest.mark.parametrize("ctype, medium", [("AWAV", "air"), ("WAVE-LOG", "vacuum"), ("LINEAR", ""),
                                           ("WAVELENGTH", "")])
def test_medium_from_the_fits_header_ctype(ctype, medium):
    """Found by a bad-input hunt: CTYPE1 = 'AWAV' (air, FITS WCS paper III) was ignored."""
    header = fits.Header({"CTYPE1": ctype})
    sp = Spectrum(flux=np.ones(3) * u.Jy, spectral_axis=[5000.0, 5001.0, 5002.0] * u.AA, meta={"header": header})
    assert spectral_set_from_spectra(sp).medium == medium
    assert spectral_set_from_spectra(sp, medium="vacuum").medium == "vacuum"       # the parameter wins


def test_the_reader_says_when_files_name_a_medium_its_parameter_does_not(tmp_path, caplog):
    """The reader's ``medium`` is the survey's (one for every file: files that differ would not
    stack); when it is empty and a file's CTYPE1 says AWAV, a warning says how to use it."""
    header = fits.Header({"CTYPE1": "AWAV", "CRVAL1": 5000.0, "CDELT1": 1.0, "CRPIX1": 1.0, "CUNIT1": "Angstrom"})
    for name in ("a", "b"):
        fits.PrimaryHDU(np.ones(50, np.float32), header=header).writeto(tmp_path / f"{name}.fits")
    with caplog.at_level("WARNING"):
        ss = SpecutilsReader(path=str(tmp_path), format="wcs1d-fits", ids="file").read()
    assert ss.medium == "" and caplog.text.count("says its wavelengths are in air") == 1
    assert "set medium = 'air'" in caplog.text
    assert SpecutilsReader(path=str(tmp_path), format="wcs1d-fits", ids="file", medium="air").read().medium == "air"


def test_missing_specutils_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "specutils", None)
    with pytest.raises(ImportError, match="pip install specutils"):
        spectral_set_to_spectra(_set())


# ----------------------------------------------------------------------------------- the reader
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_reader_reads_files_it_wrote_via_tabular_fits(tmp_path):
    ss = _set()
    # tabular-fits finds its flux column by unit: a dimensionless flux could not be read back
    for sp in spectral_set_to_spectra(ss, flux_unit="Jy"):
        sp.write(tmp_path / f"{sp.meta['id']}.fits", format="tabular-fits")
    reader = SpecutilsReader(path=str(tmp_path), format="tabular-fits", ids="file", medium="vacuum")
    back = reader.read()
    assert back.ids.tolist() == ["a", "b", "c"] and back.medium == "vacuum" and not reader.rejected_
    assert np.array_equal(back.wave, ss.wave) and np.array_equal(back.flux, ss.flux)
    assert np.array_equal(back.mask, ss.mask)                   # polarity survives a file written by specutils
    assert np.allclose(back.ivar, ss.ivar, rtol=1e-12) and back.ivar[0, 5] == 0.0
    with pytest.raises(DataError, match="none of the 3 file"):
        SpecutilsReader(path=str(tmp_path), format="APOGEE apVisit").read()


def test_reader_params():
    r = SpecutilsReader(path="x.fits")
    assert r.format is None and r.medium == "" and r.ids == "meta" and r.multi is False
    from slamfw.errors import ConfigError
    with pytest.raises(ConfigError):
        SpecutilsReader(path="x.fits", medium="water")




@pytest.mark.parametrize("name", ["apStar-dr17-2M17335483-2753043.fits", "apStar-dr17-2M19485057+5005279.fits",
                                  "apStar-r6-2M17334253-1654573.fits", "apStar-r6-2M19535443+4424541.fits"])
def test_apstar_matches_the_apogee_reader(apogee_dir, name):
    """specutils' "APOGEE apStar" loader: same grid, flux and ivar as slamfw's ``apogee`` reader on
    the pixels that reader keeps; specutils has no bitmask, so it keeps more pixels (differences)."""
    path = str(apogee_dir / name)
    ours = SpecutilsReader(path=path, format="APOGEE apStar", medium="vacuum").read()
    theirs = registry.create("reader", "apogee", {"path": path}).read()
    assert ours.ids.tolist() == theirs.ids.tolist() and ours.medium == theirs.medium == "vacuum"
    assert np.array_equal(ours.wave, theirs.wave)
    good = theirs.mask[0]
    assert np.array_equal(ours.flux[0, good], theirs.flux[0, good])
    assert np.allclose(ours.ivar[0, good], theirs.ivar[0, good], rtol=1e-12)
    assert np.all(ours.mask[0, good])                            # every pixel apogee keeps, specutils keeps
    assert ours.mask.sum() > theirs.mask.sum()                   # ... and more: no bitmask, no sentinels
    assert np.array_equal(ours.meta["ra"], theirs.meta["ra"]) and np.array_equal(ours.meta["snr"], theirs.meta["snr"])
    assert "rv" not in ours.meta                                 # apStar is rest-frame: nothing to shift


def test_apstar_identified_without_format(apogee_dir):
    a = SpecutilsReader(path=str(apogee_dir / "apStar-dr17-*.fits")).read()
    assert a.ids.tolist() == ["2M17335483-2753043", "2M19485057+5005279"] and a.wave.shape == (8575,)


def test_single_visit_dr13_apstar_is_rejected_by_specutils(apogee_dir):
    """specutils' apStar loader indexes row 0 of a 2-D image; DR13 single-visit files hold 1-D
    arrays, so the loader fails: the file is rejected with the reason, the others are read."""
    reader = SpecutilsReader(path=str(apogee_dir / "apStar-r6-*.fits"), format="APOGEE apStar")
    ss = reader.read()
    assert ss.ids.tolist() == ["2M17334253-1654573", "2M19535443+4424541"]
    assert len(reader.rejected_) == 1 and "apStar-r6-2M03290406+3117075.fits" in reader.rejected_[0][0]
    assert "cannot read" in reader.rejected_[0][1] and "IndexError" in reader.rejected_[0][1]


def test_apvisit_descending_chips_are_sorted(apogee_dir):
    path = str(apogee_dir / "apVisit-r13-5095-55844-128.fits")
    ours = SpecutilsReader(path=path, format="APOGEE apVisit").read()
    theirs = registry.create("reader", "apogee", {"path": path}).read()
    assert ours.ids.tolist() == ["2M01183798+8403419"]           # OBJID; apogee adds /plate-mjd-fiber
    assert np.all(np.diff(ours.wave) > 0) and np.array_equal(ours.wave, theirs.wave)
    good = theirs.mask[0]
    assert np.array_equal(ours.flux[0, good], theirs.flux[0, good])
    assert np.allclose(ours.ivar[0, good], theirs.ivar[0, good], rtol=1e-6)
    # difference: specutils' loader gives no velocity, so the observed-frame visit is not shifted
    assert "rv" not in ours.meta and np.isfinite(theirs.meta["rv"][0])


def test_aspcapstar_without_id_falls_back_to_the_file_name(apogee_dir):
    path = apogee_dir / "aspcapStar-r6-l30e.2-2M17334253-1654573.fits"
    ss = SpecutilsReader(path=str(path), format="APOGEE aspcapStar").read()
    assert ss.ids.tolist() == ["2M17334253-1654573"]             # header keyword OBJ
    by_file = SpecutilsReader(path=str(path), format="APOGEE aspcapStar", ids="file").read()
    assert by_file.ids.tolist() == ["aspcapStar-r6-l30e.2-2M17334253-1654573"]
    theirs = registry.create("reader", "apogee", {"path": str(path)}).read()
    assert np.array_equal(ss.wave, theirs.wave)
    good = theirs.mask[0]
    assert np.array_equal(ss.flux[0, good], theirs.flux[0, good]) and np.allclose(ss.ivar[0, good], theirs.ivar[0, good])
    # chip gaps (flux = error = 0) get ivar 0 here too; pixels ASPCAP rejected (flux 0, error 10) do
    # not: a difference from the apogee reader, which treats every flux-0 pixel as bad
    zero = ss.flux[0] == 0
    assert set(np.unique(ss.ivar[0, zero]).tolist()) == {0.0, 0.01} and not good[zero].any()


def test_lamost_files_have_no_specutils_loader(lamost_dir):
    """specutils 2.4 has no LAMOST loader: identification fails and every file is rejected with a
    hint to set ``format`` (use slamfw's ``lamost`` reader instead)."""
    reader = SpecutilsReader(path=str(lamost_dir / "spec-5*.fits"))
    with pytest.raises(DataError, match="could be read"):
        reader.read()
    assert reader.rejected_ and all("cannot read" in why for _, why in reader.rejected_)


def test_reader_passes_the_reader_contract(apogee_dir, tmp_path):
    import shutil

    from slamfw.testing import check_reader
    for f in apogee_dir.glob("apStar-dr17-*.fits"):
        shutil.copy(f, tmp_path / f.name)
    check_reader(SpecutilsReader, {"path": str(tmp_path), "format": "APOGEE apStar", "medium": "vacuum"})
