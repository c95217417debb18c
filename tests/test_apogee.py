"""The APOGEE file parsers (plugins/slamfw_plugins/readers/apogee.py) on the real sample files
described in shared/data/apogee_samples/SOURCE.md: every file, every oddity, and damaged inputs."""
from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from slamfw_plugins.readers.apogee import (
    BAD_PIXMASK,
    detect_product,
    read_apogee_file,
    read_apstar,
    read_apvisit,
    read_aspcap_labels,
)

from slamfw import DataError

DR17_3V = "apStar-dr17-2M17335483-2753043.fits"  # 3 visits, NaN gaps
DR17_1V = "apStar-dr17-2M19485057+5005279.fits"  # 1 visit: (2, 8575), row 1 all zeros
R6_2V = "apStar-r6-2M17334253-1654573.fits"  # 2 visits, error 1e10 in gaps
R6_2V_B = "apStar-r6-2M19535443+4424541.fits"
R6_1V = "apStar-r6-2M03290406+3117075.fits"  # 1 visit: 1-D arrays
VISIT_A = "apVisit-r13-5095-55844-128.fits"
VISIT_B = "apVisit-r13-9518-57729-104.fits"
ASPCAP_GIANT = "aspcapStar-r6-l30e.2-2M17334253-1654573.fits"
ASPCAP_MDWARF = "aspcapStar-r6-l30e.2-2M19535443+4424541.fits"  # AKTARG = NAN card
ASPCAP_REJECTED = "aspcapStar-r6-l30e.2-2M03290406+3117075.fits"  # PARAM = -9999

# file -> (product, ids of the default read, number of visits)
FILES = {
    DR17_3V: ("apStar", ["2M17335483-2753043"], 3),
    DR17_1V: ("apStar", ["2M19485057+5005279"], 1),
    R6_2V: ("apStar", ["2M17334253-1654573"], 2),
    R6_2V_B: ("apStar", ["2M19535443+4424541"], 2),
    R6_1V: ("apStar", ["2M03290406+3117075"], 1),
    VISIT_A: ("apVisit", ["2M01183798+8403419/5095-55844-128"], 1),
    VISIT_B: ("apVisit", ["2M00242666+5341178/9518-57729-104"], 1),
    ASPCAP_GIANT: ("aspcapStar", ["2M17334253-1654573"], 2),
    ASPCAP_MDWARF: ("aspcapStar", ["2M19535443+4424541"], 2),
    ASPCAP_REJECTED: ("aspcapStar", ["2M03290406+3117075"], 1),
}
LOG_W0, LOG_DW, NWAVE = 4.179, 6e-6, 8575




def close(actual, expected, tol) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert np.all(np.abs(actual - expected) <= np.asarray(tol)), (actual, expected)


def raw(path: Path, hdu: int) -> np.ndarray:
    with fits.open(path, memmap=False) as hl:
        return np.asarray(hl[hdu].data)


# ------------------------------------------------------------------------------- every file
def test_all_sample_files_are_covered(apogee_dir):
    assert sorted(p.name for p in apogee_dir.glob("*.fits")) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file_reads(apogee_dir, name):
    product, ids, _ = FILES[name]
    path = apogee_dir / name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no astropy warning either (AKTARG = NAN is never touched)
        ss = read_apogee_file(path)
    with fits.open(path, memmap=False) as hl:
        assert detect_product(hl, path) == product
    assert ss.ids.tolist() == ids
    assert ss.source == name and ss.medium == "vacuum"
    assert np.all(np.diff(ss.wave) > 0)
    assert 15100 < ss.wave[0] < 15200 and 16900 < ss.wave[-1] < 17000
    assert ss.n_pixels == (3 * 4096 if product == "apVisit" else NWAVE)
    assert np.all(np.isfinite(ss.flux)) and np.all(np.isfinite(ss.ivar)) and np.all(ss.ivar >= 0)
    assert ss.mask.dtype == bool
    assert np.all(ss.ivar[~ss.mask] == 0) and np.all(ss.ivar[ss.mask] > 0)
    good = ss.mask.mean()
    assert 0.75 < good < 0.96, good  # ~10 % of the apStar grid is gap or edge
    for key in ("ra", "dec", "snr", "rv", "vhelio"):
        assert ss.meta[key].shape == (1,) and np.isfinite(ss.meta[key]).all(), key
    assert 0 <= ss.meta["ra"][0] < 360 and -90 <= ss.meta["dec"][0] <= 90 and ss.meta["snr"][0] > 20
    star = ids[0].split("/")[0]
    assert re.fullmatch(r"2M\d{8}[+-]\d{7}", star)
    if product != "apVisit":
        assert star in name
    assert (ss.labels is not None) == (product == "aspcapStar")


@pytest.mark.parametrize("name", [DR17_3V, R6_2V, ASPCAP_GIANT])
def test_log_linear_vacuum_grid(apogee_dir, name):
    ss = read_apogee_file(apogee_dir / name)
    expected = 10 ** (LOG_W0 + LOG_DW * np.arange(NWAVE))
    np.testing.assert_allclose(ss.wave, expected, rtol=1e-12)
    np.testing.assert_allclose([ss.wave[0], ss.wave[-1]], [15100.80, 16999.81], atol=0.01)


# ------------------------------------------------------------------------------ apStar rows
def test_apstar_rows_and_visit_ids_dr17(apogee_dir):
    path = apogee_dir / DR17_3V
    flux = raw(path, 1)
    assert flux.shape == (5, NWAVE)  # combined x2 + 3 visits
    comb, every, visits = (read_apstar(path, v) for v in ("combined", "all", "visits"))
    assert comb.ids.tolist() == ["2M17335483-2753043"]
    assert visits.ids.tolist() == [f"2M17335483-2753043/visit{k}" for k in (1, 2, 3)]
    assert every.ids.tolist() == comb.ids.tolist() + visits.ids.tolist()
    # the spectra are the right rows: combined = row 0 (not row 1), visit k = row k + 1
    for i, row in enumerate([0, 2, 3, 4]):
        good = every.mask[i]
        np.testing.assert_array_equal(every.flux[i][good], flux[row][good])
    assert not np.allclose(np.nan_to_num(flux[1])[comb.mask[0]], comb.flux[0][comb.mask[0]])
    np.testing.assert_allclose(comb.meta["snr"], [154.155], atol=1e-3)
    np.testing.assert_allclose(comb.meta["vhelio"], [15.6814], atol=1e-4)
    np.testing.assert_allclose(visits.meta["snr"], [67.2021, 90.5625, 105.8963], atol=1e-3)
    np.testing.assert_allclose(visits.meta["vhelio"], [15.9149, 15.6499, 15.5607], atol=1e-3)
    assert visits.meta["visit_file"].tolist()[0] == "apVisit-dr17-5815-56396-212.fits"
    assert visits.meta["visit"].tolist() == [1, 2, 3] and every.meta["visit"][0] == 0


def test_apstar_rows_dr13(apogee_dir):
    path = apogee_dir / R6_2V
    flux, err = raw(path, 1), raw(path, 2)
    assert flux.shape == (4, NWAVE)
    every = read_apstar(path, "all")
    assert every.ids.tolist() == ["2M17334253-1654573", "2M17334253-1654573/visit1", "2M17334253-1654573/visit2"]
    for i, row in enumerate([0, 2, 3]):
        good = every.mask[i]
        np.testing.assert_array_equal(every.flux[i][good], flux[row][good])
        np.testing.assert_allclose(every.ivar[i][good], 1.0 / err[row][good].astype(float) ** 2)
    # row 1 (global weighting) hides 300 flux-0 pixels with ordinary errors (~7): never returned
    hidden = (flux[1] == 0) & (err[1] < 1e9)
    assert hidden.sum() == 300
    np.testing.assert_allclose(every.meta["vhelio"], [-72.9519, -72.9476, -72.9565], atol=1e-4)


def test_invalid_visits_argument(apogee_dir):
    with pytest.raises(DataError, match="visits must be one of"):
        read_apstar(apogee_dir / R6_2V, "both")


# ------------------------------------------------------------------------- apStar sentinels
@pytest.mark.parametrize("name, n_nan", [(DR17_3V, 784), (DR17_1V, 774)])
def test_dr17_nan_gaps_masked(apogee_dir, name, n_nan):
    path = apogee_dir / name
    flux, err = raw(path, 1)[0], raw(path, 2)[0]
    gap = np.isnan(flux)
    assert gap.sum() == n_nan and np.array_equal(gap, np.isnan(err))
    ss = read_apstar(path)
    assert not ss.mask[0][gap].any() and np.all(ss.ivar[0][gap] == 0) and np.all(ss.flux[0][gap] == 0)
    # the gaps: blue edge, the two chip gaps (~15810-15857 A, ~16435-16473 A) and the red edge
    for lo, hi in ((15100, 15142), (15811, 15856), (16436, 16472), (16955, 17000)):
        assert gap[(ss.wave > lo) & (ss.wave < hi)].all(), (lo, hi)
    assert not gap[(ss.wave > 15150) & (ss.wave < 15800)].any()


def test_dr17_visit_rows_zero_gaps_masked(apogee_dir):
    path = apogee_dir / DR17_3V
    flux, err = raw(path, 1)[2:], raw(path, 2)[2:]
    gap = (flux == 0) & (err == 0)
    assert gap.sum(axis=1).tolist() == [772, 772, 772]
    ss = read_apstar(path, "visits")
    assert not ss.mask[gap].any() and np.all(ss.ivar[gap] == 0)


def test_huge_errors_masked(apogee_dir):
    # DR17: bad pixels inside the spectrum carry error > 1e9
    path = apogee_dir / DR17_3V
    err = raw(path, 2)[0]
    big = err > 1e9
    assert big.sum() == 49
    assert not read_apstar(path).mask[0][big].any()
    assert not read_apstar(path, bad_bits=0).mask[0][big].any()  # by the error alone, not only the bitmask
    # DR13: gap and edge pixels have flux 0 and error exactly 1e10, no NaN
    path = apogee_dir / R6_2V
    flux, err = raw(path, 1)[0], raw(path, 2)[0]
    gap = err == np.float32(1e10)
    assert gap.sum() == 911 and np.all(flux[gap] == 0) and not np.isnan(flux).any()
    ss = read_apstar(path)
    assert not ss.mask[0][gap].any() and np.all(ss.ivar[0][gap] == 0)
    assert ss.mask[0].sum() == 7425


def test_pixmask_bits(apogee_dir):
    assert BAD_PIXMASK == sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 12, 14))  # "bad" bits + SIG_SKYLINE
    path = apogee_dir / DR17_3V
    assert raw(path, 3).dtype == np.dtype(">i8") and raw(path, 3).max() == 28721  # SOURCE.md: bits 0, 4, 5, 12-14
    bitmask, err = raw(path, 3)[2], raw(path, 2)[2]
    usable = (err > 0) & (err < 1e9)
    ss = read_apstar(path, "visits")
    bad_bits = (bitmask & BAD_PIXMASK) != 0
    assert bad_bits.sum() > 300 and not ss.mask[0][bad_bits].any()
    skyline_only = usable & ((bitmask & (1 << 12)) != 0) & ((bitmask & (BAD_PIXMASK & ~(1 << 12))) == 0)
    assert skyline_only.sum() > 100 and not ss.mask[0][skyline_only].any()
    # warnings (SIG_TELLURIC 13, PERSIST 9-11, LITTROW_GHOST 8) keep the pixel
    warn_only = usable & (bitmask != 0) & ~bad_bits
    assert warn_only.sum() > 500 and ss.mask[0][warn_only].all()
    # bad_bits=0 ignores the bitmask: exactly the bit-flagged pixels come back
    everything = read_apstar(path, "visits", bad_bits=0)
    assert np.array_equal(everything.mask[0] & ~ss.mask[0], usable & bad_bits)


def test_single_visit_dr13_one_dimensional(apogee_dir):
    path = apogee_dir / R6_1V
    flux = raw(path, 1)
    assert flux.shape == (NWAVE,)  # NVISITS = 1 -> 1-D arrays
    comb, every, visits = (read_apstar(path, v) for v in ("combined", "all", "visits"))
    assert comb.flux.shape == (1, NWAVE)
    assert every.ids.tolist() == ["2M03290406+3117075"]  # the one visit is not repeated
    assert visits.ids.tolist() == ["2M03290406+3117075/visit1"]
    np.testing.assert_array_equal(visits.flux, comb.flux)
    good = comb.mask[0]
    np.testing.assert_array_equal(comb.flux[0][good], flux[good])
    assert (raw(path, 2) == np.float32(1e10)).sum() == 855 and comb.mask[0].sum() == 6731
    np.testing.assert_allclose(comb.meta["snr"], [33.127], atol=1e-3)


def test_single_visit_dr17_zero_second_row(apogee_dir):
    path = apogee_dir / DR17_1V
    flux, err = raw(path, 1), raw(path, 2)
    assert flux.shape == (2, NWAVE) and np.all(flux[1] == 0) and np.all(err[1] == 0)
    every, visits = read_apstar(path, "all"), read_apstar(path, "visits")
    assert every.ids.tolist() == ["2M19485057+5005279"]  # the all-zero row is never a spectrum
    assert visits.ids.tolist() == ["2M19485057+5005279/visit1"]
    np.testing.assert_array_equal(visits.flux, every.flux)
    assert visits.mask.mean() > 0.8
    assert visits.meta["snr"][0] > 100  # header SNRVIS1 is 0.0 here: the combined S/N is used


def test_rest_frame_spectra_have_zero_rv(apogee_dir):
    """apStar/aspcapStar are shifted to the rest frame already: pre-processing must not shift them again."""
    for name in (DR17_3V, R6_2V, ASPCAP_GIANT):
        ss = read_apogee_file(apogee_dir / name, "all")
        assert np.all(ss.meta["rv"] == 0) and np.all(np.abs(ss.meta["vhelio"]) > 1)


# -------------------------------------------------------------------------------- apVisit
@pytest.mark.parametrize("name", [VISIT_A, VISIT_B])
def test_apvisit_sorted_and_consistent(apogee_dir, name):
    path = apogee_dir / name
    flux, err, bitmask, wave = (raw(path, i) for i in (1, 2, 3, 4))
    assert flux.shape == wave.shape == (3, 4096) and bitmask.dtype == np.dtype(">i2")
    assert np.all(np.diff(wave, axis=1) < 0)  # decreasing along each chip
    assert wave[0, 0] > wave[1, 0] > wave[2, 0]  # chips red, green, blue
    ss = read_apvisit(path)
    assert np.all(np.diff(ss.wave) > 0) and ss.n_pixels == 3 * 4096
    assert ss.wave[0] == wave.min() and ss.wave[-1] == wave.max()
    # every raw pixel is where its wavelength now is, with its own flux, error and mask
    pos = np.searchsorted(ss.wave, wave.ravel())
    np.testing.assert_array_equal(ss.wave[pos], wave.ravel())
    np.testing.assert_array_equal(ss.flux[0][pos], flux.ravel().astype(float))
    good = ss.mask[0][pos]
    np.testing.assert_allclose(ss.ivar[0][pos][good], 1.0 / err.ravel()[good].astype(float) ** 2)
    np.testing.assert_array_equal(good, (bitmask.ravel() & BAD_PIXMASK) == 0)
    # one pixel spelled out: the reddest raw pixel (chip 0, pixel 0) is now the last
    assert ss.flux[0, -1] == flux[0, 0] and ss.wave[-1] == wave[0, 0]
    # the chip gaps are simply absent
    assert np.max(np.diff(ss.wave)) > 30


def test_apvisit_ids_and_meta(apogee_dir):
    a = read_apvisit(apogee_dir / VISIT_A)
    assert a.ids.tolist() == ["2M01183798+8403419/5095-55844-128"]
    np.testing.assert_allclose([a.meta["snr"][0], a.meta["vhelio"][0], a.meta["rv"][0]], [44.967, -33.123, -44.421],
                               atol=1e-3)
    np.testing.assert_allclose([a.meta["ra"][0], a.meta["dec"][0]], [19.658251, 84.061646])
    # observed frame: rv is the velocity relative to the telescope (VRAD), vhelio = VRAD + BC
    np.testing.assert_allclose(a.meta["vhelio"], a.meta["rv"] + a.meta["bc"], atol=1e-3)
    b = read_apogee_file(apogee_dir / VISIT_B)
    assert b.ids.tolist() == ["2M00242666+5341178/9518-57729-104"]
    np.testing.assert_allclose([b.meta["snr"][0], b.meta["vhelio"][0]], [89.595, -82.053], atol=1e-3)
    assert (b.meta["plate"][0], b.meta["mjd"][0], b.meta["fiber"][0]) == ("9518", 57729, 104)


@pytest.mark.parametrize("name", [VISIT_A, VISIT_B])
def test_apvisit_without_the_header_cards_reads_the_hdu11_table(apogee_dir, tmp_path, name):
    """Where the primary header lacks a value, it comes from the visit's row in HDU 11 (astropy's
    values: float32 there, so close to the header's, not equal)."""
    path = _copy(apogee_dir, tmp_path, name)
    with_cards = read_apvisit(path)
    with fits.open(path, mode="update") as hl:
        for key in ("OBJID", "PLATE", "MJD5", "FIBERID", "RA", "DEC", "SNR", "VRAD", "VHELIO", "BC", "STARFLAG"):
            del hl[0].header[key]
    with fits.open(path, memmap=False) as hl:
        row = {k: hl[11].data[k][0] for k in ("RA", "DEC", "SNR", "VREL", "VHELIO", "BC", "STARFLAG")}
    ss = read_apvisit(path)
    assert ss.ids.tolist() == with_cards.ids.tolist()
    assert (ss.meta["plate"][0], ss.meta["mjd"][0], ss.meta["fiber"][0]) == (
        with_cards.meta["plate"][0], with_cards.meta["mjd"][0], with_cards.meta["fiber"][0])
    for key, col in (("ra", "RA"), ("dec", "DEC"), ("snr", "SNR"), ("rv", "VREL"), ("vhelio", "VHELIO"), ("bc", "BC"),
                     ("starflag", "STARFLAG")):
        assert ss.meta[key][0] == row[col], key                          # the table's value, as astropy reads it
        np.testing.assert_allclose(ss.meta[key][0], with_cards.meta[key][0], rtol=1e-6, atol=1e-6, err_msg=key)
    np.testing.assert_array_equal(ss.flux, with_cards.flux)


def test_an_apvisit_wavelength_that_is_not_finite_is_named(apogee_dir, tmp_path):
    """Found by a bad-input hunt: one NaN wavelength was 'not an APOGEE wavelength array (values
    1.514e+04-1.695e+04 ...)', values inside the range it asked for."""
    path = _copy(apogee_dir, tmp_path, VISIT_A)
    with fits.open(path, mode="update") as hl:
        hl[4].data[1, 7] = np.nan
    with pytest.raises(DataError, match=r"HDU 4 \(wavelength\) is nan at pixel \d+ of \d+ .* 1 such\)"):
        read_apvisit(path)


# ------------------------------------------------------------------------------ aspcapStar
def test_aspcapstar_spectrum_and_labels(apogee_dir):
    path = apogee_dir / ASPCAP_GIANT
    flux, err = raw(path, 1), raw(path, 2)
    gap = (flux == 0) & (err == 0)
    rejected = (flux == 0) & (err == 10)
    assert gap.sum() == 1061 and rejected.sum() == 119
    ss = read_apogee_file(path)
    assert not ss.mask[0][gap | rejected].any() and np.all(ss.ivar[0][gap | rejected] == 0)
    assert ss.mask[0].sum() == NWAVE - 1061 - 119
    assert 0.9 < np.median(ss.flux[0][ss.mask[0]]) < 1.05  # pseudo-continuum normalised
    assert ss.label_names == ["Teff", "logg", "FeH"] and ss.label_units == ["K", "dex", "dex"]
    close(ss.labels[0], [3788.4, 1.0784, 0.0046], [0.1, 1e-4, 1e-4])


def test_aspcap_labels_known_star(apogee_dir):
    t = read_aspcap_labels(apogee_dir / ASPCAP_GIANT)
    assert len(t) == 1 and t["id"][0] == "2M17334253-1654573"
    row = t[0]
    close([row["Teff"], row["logg"], row["FeH"], row["alpha_M"]], [3788.4, 1.0784, 0.00458, 0.15733],
          [0.1, 1e-4, 1e-4, 1e-4])
    close([row["Teff_err"], row["logg_err"], row["FeH_err"], row["alpha_M_err"]], [69.28, 0.08, 0.0202, 0.01298],
          [0.01, 1e-4, 1e-4, 1e-4])
    assert row["aspcapflag"] == 640 and not row["star_bad"] and row["class"] == "GKg_c"
    assert str(t["Teff"].unit) == "K"
    # SOURCE.md's "sigma of 100" is a variance of -9999: a label without an uncertainty (C, N uncalibrated
    # in DR13): error NaN, value kept. A variance of 0 (parameter held fixed) also gives a NaN error.
    cov = raw(apogee_dir / ASPCAP_GIANT, 4)["PARAM_COV"][0]
    assert cov[4, 4] == -9999 and cov[2, 2] == 0
    assert np.isnan(row["C_M_err"]) and row["C_M"] == pytest.approx(0.16192, abs=1e-5)
    assert np.isnan(row["log_vmicro_err"]) and row["log_vmicro_flag"] == 65536


def test_aspcap_rejected_labels_are_nan(apogee_dir):
    path = apogee_dir / ASPCAP_REJECTED
    param = raw(path, 4)["PARAM"][0]
    assert np.all(param[[0, 1, 3, 4, 5, 6]] == -9999)
    t = read_aspcap_labels(path)
    for name in ("Teff", "logg", "FeH", "C_M", "N_M", "alpha_M", "Teff_err", "FeH_err"):
        assert np.isnan(t[name][0]), name
    assert t["log_vmicro"][0] == pytest.approx(0.222, abs=1e-3)  # not a sentinel: kept
    assert t["star_bad"][0] and t["aspcapflag"][0] == 109055624
    assert np.all(np.isnan(t["X_M"][0])) and t["X_M"].shape == (1, 26)
    ss = read_apogee_file(path)
    assert np.all(np.isnan(ss.labels)) and ss.drop_unlabelled().n_stars == 0


def test_aspcap_nonstandard_header_card(apogee_dir):
    path = apogee_dir / ASPCAP_MDWARF
    with fits.open(path) as hl, pytest.raises(VerifyError):
        hl[0].header["AKTARG"]  # the trap SOURCE.md describes
    t = read_aspcap_labels(path)
    np.testing.assert_allclose([t["Teff"][0], t["logg"][0], t["FeH"][0]], [2749.0, 3.6788, -0.3747], atol=1e-3)
    assert t["class"][0] == "Md_c"
    assert np.isfinite(t["ra"][0]) and t["ra"][0] == pytest.approx(298.476799)


def test_apstar_and_aspcapstar_same_star(apogee_dir):
    for star in ("2M17334253-1654573", "2M19535443+4424541", "2M03290406+3117075"):
        ap = read_apstar(apogee_dir / f"apStar-r6-{star}.fits")
        asp = read_apogee_file(apogee_dir / f"aspcapStar-r6-l30e.2-{star}.fits")
        assert ap.ids.tolist() == asp.ids.tolist() == [star]
        np.testing.assert_array_equal(ap.wave, asp.wave)
        gap = raw(apogee_dir / f"apStar-r6-{star}.fits", 2).reshape(-1, NWAVE)[0] >= 1e10
        assert not asp.mask[0][gap].any()  # ASPCAP's gaps include the apStar gaps
        np.testing.assert_allclose(ap.meta["ra"], asp.meta["ra"])


# ------------------------------------------------------------------------ damaged and foreign
def _copy(apogee_dir: Path, tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copyfile(apogee_dir / name, dest)
    dest.chmod(0o644)
    return dest


@pytest.mark.parametrize("name, keep", [(DR17_3V, 0.5), (VISIT_A, 0.3), (ASPCAP_GIANT, 0.99), (R6_1V, 0.999)])
def test_truncated_file(apogee_dir, tmp_path, name, keep):
    data = (apogee_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DataError, match="truncated") as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own "may have been truncated"
        read_apogee_file(path)
    assert str(path) in str(info.value)


def test_truncated_inside_a_header(apogee_dir, tmp_path):
    path = _copy(apogee_dir, tmp_path, R6_2V)
    with fits.open(apogee_dir / R6_2V) as hl:
        header_start = hl.fileinfo(6)["hdrLoc"]
    path.write_bytes((apogee_dir / R6_2V).read_bytes()[:header_start + 1000])
    with pytest.raises(DataError, match="truncated") as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_apstar(path)
    assert R6_2V in str(info.value)


def test_truncated_at_an_hdu_boundary(apogee_dir, tmp_path):
    """Cut between HDUs: no astropy warning, but HDUs the pipeline's HISTORY lists are missing."""
    with fits.open(apogee_dir / DR17_3V) as hl:
        cut = hl.fileinfo(10)["hdrLoc"]  # HDU 10 gone, 0-9 intact
    path = tmp_path / DR17_3V
    path.write_bytes((apogee_dir / DR17_3V).read_bytes()[:cut])
    with pytest.raises(DataError, match=r"has 10 HDU\(s\).*at least 11") as info:
        read_apogee_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"id,teff\n1,5000\n" * 10, b"\x00" * 5000])
def test_empty_or_not_fits(tmp_path, content):
    path = tmp_path / "apStar-dr17-2M00000000+0000000.fits"
    path.write_bytes(content)
    for reader in (read_apogee_file, read_apstar, read_apvisit, read_aspcap_labels):
        with pytest.raises(DataError, match="not a FITS file") as info:
            reader(path)
        assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_apogee_file(tmp_path / "apStar-nothing.fits")


def test_unrelated_fits_layouts(tmp_path):
    image = tmp_path / "image.fits"
    fits.PrimaryHDU(np.zeros((10, 10))).writeto(image)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="D", array=np.arange(3.0))])]).writeto(table)
    for path in (image, table):
        with pytest.raises(DataError, match="not an APOGEE apStar, apVisit or aspcapStar file") as info:
            read_apogee_file(path)
        assert str(path) in str(info.value)
        with pytest.raises(DataError, match=r"apStar file has at least 10"):
            read_apstar(path)
        with pytest.raises(DataError, match=r"apVisit file has at least 11"):
            read_apvisit(path)
        with pytest.raises(DataError, match=r"aspcapStar file has at least 5"):
            read_aspcap_labels(path)


def test_wrong_product_for_the_parser(apogee_dir):
    with pytest.raises(DataError, match="no CRVAL1/CDELT1") as info:
        read_apstar(apogee_dir / VISIT_A)
    assert VISIT_A in str(info.value)
    with pytest.raises(DataError, match="not an APOGEE wavelength array"):
        read_apvisit(apogee_dir / DR17_3V)
    with pytest.raises(DataError, match="not an aspcapStar file"):
        read_aspcap_labels(apogee_dir / DR17_3V)


def test_apstar_layout_checks(apogee_dir, tmp_path):
    path = _copy(apogee_dir, tmp_path, R6_2V)
    with fits.open(path, mode="update") as hl:
        hl[0].header["NVISITS"] = 5
    with pytest.raises(DataError, match=r"NVISITS = 5 but HDU 1 has 4 row") as info:
        read_apstar(path)
    assert str(path) in str(info.value)
    path = _copy(apogee_dir, tmp_path, DR17_1V)
    with fits.open(path, mode="update") as hl:
        hl[1].header["CDELT1"] = 6e-4
    with pytest.raises(DataError, match="not an APOGEE grid"):
        read_apstar(path)
    with fits.open(path, mode="update") as hl:   # a bad-input hunt: 8575 pixels 3e-6 A wide were read
        hl[1].header["CDELT1"] = 1e-14
    with pytest.raises(DataError, match="not an APOGEE grid .*in steps of 1e-6 to 1e-4"):
        read_apstar(path)
    with fits.open(path, mode="update") as hl:
        hl[1].header["CDELT1"] = 6e-6
        hl[2].data = hl[2].data[:, :100]
    with pytest.raises(DataError, match="differ in shape"):
        read_apstar(path)


def test_each_file_is_opened_once(apogee_dir, monkeypatch):
    """The product is recognised and read in one opening of the file (its headers read once:
    a second opening was about 40 % of an apStar file's reading time)."""
    import slamfw_plugins.readers.apogee as apogee
    opened = []
    real_open = apogee.fits.open
    monkeypatch.setattr(apogee.fits, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    files = sorted(apogee_dir.glob("*.fits"))
    assert all(apogee.read_apogee_file(f).n_stars >= 1 for f in files)
    assert len(opened) == len(files) == 10
