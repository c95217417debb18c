"""The LAMOST LRS file parser (plugins/slamfw_plugins/readers/lamost.py) on the real sample files
in shared/data/lamost_samples (see SOURCE.md there): every file, one test per documented oddity,
and corrupt or foreign input."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from slamfw_plugins.readers.lamost import C_KMS, read_lamost_file, read_lamost_labels

from slamfw import DataError, SpectralSet

# name -> (OBSID, npix, first and last wavelength in A, header Z or None for -9999, bad pixels)
# from SOURCE.md's per-file table; bad pixels = ivar 0, or flux 0, or ORMASK set (counted from the files).
EXPECTED = {
    "spec-55984-B5598401_sp05-229.fits": ("43905229", 3748, 3838.84, 9097.04, 1.263e-04, 21),
    "spec-56249-HD084529N184902B01_sp04-195.fits": ("78904195", 3890, 3699.99, 9059.41, 1.1208e-04, 12),
    "spec-56249-HD084529N184902B01_sp11-177.fits": ("78911177", 3820, 3700.00, 8914.60, None, 297),
    "spec-57798-HD084529N184902V01_sp03-150.fits": ("535903150", 3909, 3699.99, 9099.13, 1.2555e-04, 4),
    "spec-57287-KP193637N444141V03_sp10-161.fits.gz": ("359910161", 3909, 3699.99, 9099.13, -1.7162e-04, 2),
    "spec-58397-EG014118N254444M01_sp03-031.fits": ("677503031", 3909, 3699.99, 9099.13, -6.4e-06, 48),
    "spec-59517-EG025613N082253M02_sp08-200.fits.gz": ("937808200", 3909, 3699.99, 9099.13, -2.9227e-04, 21),
    "spec-59522-EG224840N075042B03_sp03-013.fits.gz": ("938503013", 3909, 3699.99, 9099.13, -8.059e-05, 21),
    "spec-59522-EG224840N075042B03_sp05-172.fits.gz": ("938505172", 3909, 3699.99, 9099.13, -1.9507e-04, 21),
    "spec-59522-EG224840N075042B03_sp09-188.fits.gz": ("938509188", 3904, 3699.99, 9088.67, -1.1451e-04, 9),
}
MRS = "med-58625-TD192102N424113K01_sp12-076.fits.gz"
DR5_ORMASK = "spec-56249-HD084529N184902B01_sp04-195.fits"   # ORMASK=1 at pixels 1860-1861, ANDMASK 0
DR10_MASKS = "spec-59517-EG025613N082253M02_sp08-200.fits.gz"  # ANDMASK 2244-2245, ORMASK 2244-2246, 2459-2460
FAILED_Z = "spec-56249-HD084529N184902B01_sp11-177.fits"
SHORT_BLUE = "spec-55984-B5598401_sp05-229.fits"
FLUX0_TAIL = "spec-59522-EG224840N075042B03_sp09-188.fits.gz"
DR7_GAL = "spec-58397-EG014118N254444M01_sp03-031.fits"
META_KEYS = {"obsid", "ra", "dec", "snr_u", "snr_g", "snr_r", "snr_i", "snr_z", "snr", "z", "z_err", "rv",
             "z_flag", "class", "subclass", "data_v"}




def _raw(path: Path) -> dict[str, np.ndarray]:
    """The file's arrays read directly with astropy (the reference for the parser)."""
    with fits.open(path, memmap=False) as hdul:
        if hdul[0].data is not None:
            return dict(zip(("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK"),
                            np.asarray(hdul[0].data, float)))
        t = hdul["COADD"].data
        return {c: np.asarray(t[c][0], float) for c in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK")}


def _header(path: Path) -> fits.Header:
    with fits.open(path, memmap=False) as hdul:
        return hdul[0].header.copy()


def _write_modified(src: Path, dst: Path, changes: dict[str, dict[int, float]]) -> Path:
    """A copy of ``src`` with some pixels of some arrays changed ({array: {pixel: value}})."""
    with fits.open(src, memmap=False) as hdul:
        hdul.verify("silentfix+ignore")
        rows = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK")
        for key, pixels in changes.items():
            for pix, value in pixels.items():
                if hdul[0].data is not None:
                    hdul[0].data[rows.index(key), pix] = value
                else:
                    hdul["COADD"].data[key][0][pix] = value
        hdul.writeto(dst, output_verify="silentfix+ignore")
    return dst


# ------------------------------------------------------------------------------ every sample file
def test_sample_inventory(lamost_dir):
    """The test data are all there (a missing file must fail, not shrink the parametrised tests)."""
    names = {p.name for p in lamost_dir.iterdir()}
    assert set(EXPECTED) | {MRS, "labels_dr10_lasp.csv", "SOURCE.md"} <= names
    assert {n for n in names if n.startswith("spec-")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_lrs_file(lamost_dir, name):
    obsid, npix, first, last, z, n_bad = EXPECTED[name]
    path = lamost_dir / name
    ss = read_lamost_file(path)
    hdr, raw = _header(path), _raw(path)
    assert isinstance(ss, SpectralSet)
    assert ss.ids.tolist() == [obsid] == [str(hdr["OBSID"])]
    assert ss.source == name and ss.medium == "vacuum"
    assert ss.flux.shape == ss.ivar.shape == ss.mask.shape == (1, npix) and ss.wave.shape == (npix,)
    # wavelengths: strictly increasing, log10-linear with step 1e-4, the file's own row, the optical range
    assert np.all(np.diff(ss.wave) > 0)
    np.testing.assert_allclose(np.diff(np.log10(ss.wave)), 1e-4, rtol=1e-6)
    np.testing.assert_allclose(ss.wave, raw["WAVELENGTH"], rtol=1e-6)
    assert ss.wave[0] == pytest.approx(first, abs=0.01) and ss.wave[-1] == pytest.approx(last, abs=0.01)
    assert 3650 < ss.wave[0] and ss.wave[-1] < 9150
    # pixels: FLUX (not NORMALIZATION) and IVAR where good; bad pixels have ivar 0
    good = ss.mask[0]
    assert int((~good).sum()) == n_bad
    assert good.mean() > 0.9
    np.testing.assert_array_equal(ss.flux[0, good], raw["FLUX"][good])
    np.testing.assert_array_equal(ss.ivar[0, good], raw["IVAR"][good])
    assert np.all(ss.ivar[0, ~good] == 0) and np.all(ss.ivar >= 0) and np.all(np.isfinite(ss.flux))
    assert np.all(ss.flux[0, good] != 0)
    # metadata
    assert set(ss.meta) == META_KEYS and all(v.shape == (1,) for v in ss.meta.values())
    assert np.isfinite(ss.meta["ra"][0]) and np.isfinite(ss.meta["dec"][0])
    assert ss.meta["ra"][0] == pytest.approx(hdr["RA"]) and ss.meta["dec"][0] == pytest.approx(hdr["DEC"])
    assert str(ss.meta["obsid"][0]) == obsid
    for band in "ugriz":
        assert ss.meta[f"snr_{band}"][0] == pytest.approx(hdr[f"SNR{band.upper()}"])
    assert ss.meta["snr"][0] == ss.meta["snr_g"][0]
    if z is None:
        assert ss.meta["z_flag"][0] and np.isnan(ss.meta["rv"][0])
    else:
        assert not ss.meta["z_flag"][0]
        assert ss.meta["z"][0] == pytest.approx(z, rel=1e-4)
        assert ss.meta["rv"][0] == pytest.approx(C_KMS * z, rel=1e-4)


# ------------------------------------------------------------------------------- one per oddity
def test_variable_pixel_count_and_start(lamost_dir):
    """npix differs between files and spec-55984 starts at 3838.8 A (COEFF0 = CRVAL1 = 3.5842)."""
    sizes = {name: read_lamost_file(lamost_dir / name).n_pixels for name in EXPECTED}
    assert sorted(set(sizes.values())) == [3748, 3820, 3890, 3904, 3909]
    ss = read_lamost_file(lamost_dir / SHORT_BLUE)
    assert _header(lamost_dir / SHORT_BLUE)["COEFF0"] == pytest.approx(3.5842)
    assert ss.wave[0] == pytest.approx(10 ** 3.5842, abs=0.01) == pytest.approx(3838.84, abs=0.01)


@pytest.mark.parametrize("name", [SHORT_BLUE, "spec-57287-KP193637N444141V03_sp10-161.fits.gz", DR10_MASKS])
def test_ctype_linear_trap(lamost_dir, name):
    """CTYPE1='LINEAR' and CRVAL1 ~ 3.57 (log10 A): the grid is still read as log-linear in Angstrom."""
    hdr = _header(lamost_dir / name)
    assert hdr["CTYPE1"] == "LINEAR" and 3.5 < hdr["CRVAL1"] < 3.6 and hdr["CD1_1"] == pytest.approx(1e-4)
    ss = read_lamost_file(lamost_dir / name)
    assert ss.wave[0] == pytest.approx(10 ** hdr["CRVAL1"], rel=1e-6)  # not 3.57 + 1e-4 * i
    assert ss.wave[1] / ss.wave[0] == pytest.approx(10 ** 1e-4, rel=1e-9)


def test_sentinel_wcs_keywords_and_unrounded_start(lamost_dir):
    """spec-...sp11-177: CRPIX1/CTYPE1/WFITTYPE = -9999 and the wavelength row starts at 3700.000 A,
    not 10**COEFF0 = 3699.986 A (COEFF0 is rounded): the row wins."""
    hdr = _header(lamost_dir / FAILED_Z)
    assert hdr["CRPIX1"] == -9999 and hdr["CTYPE1"] == -9999 and hdr["COEFF0"] == pytest.approx(3.5682)
    ss = read_lamost_file(lamost_dir / FAILED_Z)
    assert ss.wave[0] == pytest.approx(3700.0, abs=1e-3)
    assert abs(ss.wave[0] - 10 ** 3.5682) > 0.01


def test_failed_redshift_is_flagged_with_nan_rv(lamost_dir):
    ss = read_lamost_file(lamost_dir / FAILED_Z)
    hdr = _header(lamost_dir / FAILED_Z)
    assert hdr["Z"] == -9999 and hdr["Z_ERR"] == -9999 and hdr["CLASS"].strip() == "Unknown"
    assert ss.meta["z_flag"].tolist() == [True]
    assert np.isnan(ss.meta["rv"][0]) and np.isnan(ss.meta["z"][0]) and np.isnan(ss.meta["z_err"][0])
    assert ss.meta["class"][0] == "Unknown" and ss.meta["subclass"][0] == "Non"


def test_rv_from_z(lamost_dir):
    """DR6: Z = -1.7162e-4 -> rv = c z = -51.450 km/s; DR10 A7 star: Z = -1.9507e-4 -> -58.481 km/s."""
    ss = read_lamost_file(lamost_dir / "spec-57287-KP193637N444141V03_sp10-161.fits.gz")
    assert ss.meta["rv"][0] == pytest.approx(-51.4504, abs=1e-3)
    ss = read_lamost_file(lamost_dir / "spec-59522-EG224840N075042B03_sp05-172.fits.gz")
    assert ss.meta["rv"][0] == pytest.approx(-58.4805, abs=1e-3)
    assert not ss.meta["z_flag"][0]


def test_flux_zero_with_positive_ivar_is_bad(lamost_dir):
    """sp09-188 (3904 pixels, to 9088.7 A): the last 4 pixels have flux 0 but IVAR 0.118 and no mask."""
    raw = _raw(lamost_dir / FLUX0_TAIL)
    assert np.all(raw["FLUX"][-4:] == 0) and np.all(raw["IVAR"][-4:] > 0.1)
    assert np.all(raw["ANDMASK"][-4:] == 0) and np.all(raw["ORMASK"][-4:] == 0)
    ss = read_lamost_file(lamost_dir / FLUX0_TAIL)
    assert ss.n_pixels == 3904 and ss.wave[-1] == pytest.approx(9088.67, abs=0.01)
    assert not ss.mask[0, -4:].any() and np.all(ss.ivar[0, -4:] == 0)
    assert ss.mask[0, -5]


def test_ivar_zero_with_empty_masks_is_bad(lamost_dir):
    """DR7 (OBJTYPE 'gal', CLASS STAR): all-zero masks but 48 pixels with IVAR 0 -> exactly those are bad."""
    raw = _raw(lamost_dir / DR7_GAL)
    assert not raw["ANDMASK"].any() and not raw["ORMASK"].any()
    ss = read_lamost_file(lamost_dir / DR7_GAL)
    np.testing.assert_array_equal(~ss.mask[0], raw["IVAR"] == 0)
    assert int((~ss.mask).sum()) == 48 and ss.meta["class"][0] == "STAR"
    assert _header(lamost_dir / DR7_GAL)["OBJTYPE"].strip() == "gal"


@pytest.mark.parametrize("name, or_only, and_pix", [
    (DR5_ORMASK, [1860, 1861], []),                  # DR5 image: masks are float32 rows
    (DR10_MASKS, [2246, 2459, 2460], [2244, 2245]),  # DR10 table: masks are float32 columns
])
def test_ormask_versus_andmask(lamost_dir, tmp_path, name, or_only, and_pix):
    """In the real files every flagged pixel also has IVAR 0, so the choice shows only once IVAR is
    restored: ORMASK-only pixels are bad with bad_ormask=True, good with False; ANDMASK pixels bad always."""
    raw = _raw(lamost_dir / name)
    assert np.all(raw["ORMASK"][or_only + and_pix] == 1) and np.all(raw["ANDMASK"][or_only] == 0)
    assert np.all(raw["ANDMASK"][and_pix] == 1) and raw["ORMASK"].dtype == float
    for bad_ormask in (True, False):  # on the file as distributed: bad either way (ivar 0)
        assert not read_lamost_file(lamost_dir / name, bad_ormask=bad_ormask).mask[0, or_only + and_pix].any()
    pix = or_only + and_pix
    copy = _write_modified(lamost_dir / name, tmp_path / name,
                           {"IVAR": {p: 1.0 for p in pix}, "FLUX": {p: 1.0 for p in pix}})
    strict = read_lamost_file(copy)
    loose = read_lamost_file(copy, bad_ormask=False)
    assert not strict.mask[0, or_only].any() and np.all(strict.ivar[0, or_only] == 0)
    assert loose.mask[0, or_only].all() and np.all(loose.ivar[0, or_only] == 1.0)
    assert not strict.mask[0, and_pix].any() and not loose.mask[0, and_pix].any()
    assert int((~strict.mask).sum()) - int((~loose.mask).sum()) == len(or_only)


@pytest.mark.parametrize("name", [DR10_MASKS, FLUX0_TAIL])
def test_dr10_header_that_strict_verify_rejects(lamost_dir, name):
    """DR10: NAXIS = 0 but stale NAXIS1/NAXIS2 -> astropy's verify('exception') fails; the parser reads it."""
    with fits.open(lamost_dir / name, memmap=False) as hdul:
        assert hdul[0].header["NAXIS"] == 0 and hdul[0].header["NAXIS2"] == 5
        with pytest.raises(VerifyError, match="NAXIS"):
            hdul.verify("exception")
    ss = read_lamost_file(lamost_dir / name)
    assert ss.ids[0] == EXPECTED[name][0] and ss.n_pixels == EXPECTED[name][1]
    assert ss.meta["data_v"][0] == "LAMOST DR10"


def test_unparsable_header_cards(lamost_dir, tmp_path):
    """A garbled Z value and a lower-case keyword (strict verify rejects both): Z counts as missing."""
    raw = bytearray((lamost_dir / "spec-57798-HD084529N184902V01_sp03-150.fits").read_bytes())
    for old, new in ((b"Z       =", b"Z       = 1.2555E-04XYZ / garbled"),
                     (b"SNRG    =", b"snrg    =                296.94 / lower case")):
        i = raw.find(old)
        raw[i:i + 80] = new.ljust(80)
    path = tmp_path / "garbled.fits"
    path.write_bytes(bytes(raw))
    with fits.open(path, memmap=False) as hdul, pytest.raises(VerifyError):
        hdul.verify("exception")
    ss = read_lamost_file(path)
    assert ss.ids[0] == "535903150" and ss.n_pixels == 3909
    assert ss.meta["z_flag"][0] and np.isnan(ss.meta["rv"][0])
    assert ss.meta["snr_g"][0] == pytest.approx(296.94)


@pytest.mark.parametrize("cards", [
    [(b"CLASS   =", b"CLASS   = STAR / unquoted")],
    [(b"CLASS   =", b"CLASS   = 'STAR     / no closing quote")],
    [(b"SUBCLASS=", b"SUBCLASS= 'K3'V' / stray quote")],
    [(b"OBSID   =", b"OBSID   = 535903150 x / trailing text")],
    [(b"OBSID   =", b"OBSID= 535903150 / '=' in column 6")],
    [(b"RA      =", b"RA      = 1.2345D+02 / D exponent")],
    [(b"TELESCOP=", b"TELESCOP= LAMOST / unquoted"), (b"DATA_V  =", b"DATA_V  = LAMOST DR5 / unquoted"),
     (b"ORIGIN  =", b"ORIGIN  = NAOC / unquoted")],
])
def test_malformed_cards_read_as_after_verifying_the_whole_file(lamost_dir, tmp_path, monkeypatch, cards):
    """The reader does not verify whole files (it parsed every card: most of the reading time);
    a card astropy cannot parse is fixed alone: the same ids, metadata and spectra as a reader
    that verified each file with silentfix first (what it did before)."""
    import slamfw_plugins.readers.lamost as lamost
    raw = bytearray((lamost_dir / "spec-57798-HD084529N184902V01_sp03-150.fits").read_bytes())
    for old, new in cards:
        i = raw.find(old)
        assert i % 80 == 0
        raw[i:i + 80] = new.ljust(80)
    path = tmp_path / "malformed.fits"
    path.write_bytes(bytes(raw))

    def read(verify_all: bool) -> tuple:
        plain_open = fits.open

        def verified_open(*args, **kwargs):
            hdul = plain_open(*args, **kwargs)
            hdul.verify("silentfix+ignore")
            return hdul
        with monkeypatch.context() as m:
            if verify_all:
                m.setattr(lamost.fits, "open", verified_open)
            try:
                ss = read_lamost_file(path)
            except DataError as exc:
                return (str(exc),)
        return ss.fingerprint(), {k: v.tolist() for k, v in ss.meta.items() if k not in ("rv", "z", "z_err")}, \
            [ss.meta[k][0] for k in ("rv", "z", "z_err")]
    now, before = read(False), read(True)
    assert len(now) == 3 and now[:2] == before[:2] and np.allclose(now[2], before[2], equal_nan=True, rtol=0, atol=0)


def test_mrs_file_is_refused(lamost_dir):
    with pytest.raises(DataError, match=r"MRS.*LRS") as err:
        read_lamost_file(lamost_dir / MRS)
    assert MRS in str(err.value)


def test_gzip_detected_by_content(lamost_dir, tmp_path):
    """A gzipped file without .gz in its name, and a plain one named .gz, both read."""
    gz = lamost_dir / "spec-57287-KP193637N444141V03_sp10-161.fits.gz"
    plain = tmp_path / "plain.fits.gz"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    renamed = tmp_path / "renamed.fits"
    shutil.copy(gz, renamed)
    a, b = read_lamost_file(plain), read_lamost_file(renamed)
    np.testing.assert_array_equal(a.flux, b.flux)
    assert a.ids[0] == b.ids[0] == "359910161"


# ---------------------------------------------------------------------------------- label table
def test_labels_csv(lamost_dir):
    t = read_lamost_labels(lamost_dir / "labels_dr10_lasp.csv")
    assert t.colnames[:4] == ["id", "Teff", "logg", "FeH"] and len(t) == 4
    assert {"filename", "class", "subclass", "snrg", "ra", "dec", "z"} <= set(t.colnames)
    assert str(t["Teff"].unit) == "K"
    row = t[list(t["id"]).index("938505172")]
    assert row["Teff"] == pytest.approx(6903.58) and row["logg"] == pytest.approx(4.293)
    assert row["FeH"] == pytest.approx(-0.708) and row["subclass"] == "A7"
    # the ids join to the spectra's ids (the catalogue z differs slightly from the header Z for A stars)
    for name in t["filename"]:
        ss = read_lamost_file(lamost_dir / name)
        match = t[t["id"] == ss.ids[0]]
        assert len(match) == 1 and match["filename"][0] == name
    assert row["z"] == pytest.approx(-2.1388e-4, rel=1e-4)


def test_labels_sentinels_and_errors(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("obsid,teff,logg,feh,snrg\n1,5000,4.5,-9999,10\n938505172.0,-9999.0,,0.1,-9999\n")
    t = read_lamost_labels(path)
    assert t["id"].tolist() == ["1", "938505172"]
    assert np.isnan(t["FeH"][0]) and np.isnan(t["Teff"][1]) and np.isnan(t["logg"][1])
    assert t["Teff"][0] == 5000 and np.isnan(t["snrg"][1])
    for text, match in (("obsid,teff,logg\n1,5000,4.5\n", "FeH"), ("teff,logg,feh\n5000,4,0\n", "obsid"),
                        ("obsid,teff,logg,feh\n1,hot,4,0\n", "not a number"),
                        ("obsid,teff,logg,feh\n1,5000,4,0\n2,5000,4,0\n1,5100,4,0\n2.0,5100,4,0\n",
                         "duplicated obsid.s. '1', '2' in"),
                        ("", "empty")):
        path.write_text(text)
        with pytest.raises(DataError, match=match) as err:
            read_lamost_labels(path)
        assert "labels.csv" in str(err.value)
    with pytest.raises(DataError, match="missing.csv"):
        read_lamost_labels(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------ corrupt and foreign
def _assert_data_error(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as err:
        read_lamost_file(path)
    assert path.name in str(err.value)


@pytest.mark.parametrize("name, keep", [
    ("spec-57798-HD084529N184902V01_sp03-150.fits", 50000),     # plain FITS cut in the data
    ("spec-57798-HD084529N184902V01_sp03-150.fits", 2000),      # cut in the header
    ("spec-59522-EG224840N075042B03_sp09-188.fits.gz", 30000),  # gzip cut (astropy alone drops the table)
    ("spec-57287-KP193637N444141V03_sp10-161.fits.gz", 1000),
])
def test_truncated_file(lamost_dir, tmp_path, name, keep):
    path = tmp_path / f"cut-{name}"
    path.write_bytes((lamost_dir / name).read_bytes()[:keep])
    _assert_data_error(path, "truncated|corrupt|cannot read")


def test_truncated_dr10_table(lamost_dir, tmp_path):
    """A DR10 file (gunzipped) cut just after its primary header: no spectrum table left."""
    raw = gzip.decompress((lamost_dir / DR10_MASKS).read_bytes())
    path = tmp_path / "cut-dr10.fits"
    path.write_bytes(raw[:2880 * 3])
    _assert_data_error(path, "truncated|no LRS spectrum")


def test_empty_missing_and_non_fits(tmp_path):
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    _assert_data_error(empty, "empty")
    text = tmp_path / "notes.fits"
    text.write_text("this is not a FITS file\n" * 200)
    _assert_data_error(text, "cannot read")
    gz = tmp_path / "junk.fits.gz"
    gz.write_bytes(gzip.compress(b"junk" * 1000))
    _assert_data_error(gz, "cannot read")
    _assert_data_error(tmp_path / "absent.fits", "cannot read")


def test_foreign_fits(tmp_path):
    """A FITS file with an unrelated layout and no LAMOST header -> not a LAMOST file."""
    path = tmp_path / "other.fits"
    fits.PrimaryHDU(np.ones(100, np.float32)).writeto(path)
    _assert_data_error(path, "not a LAMOST file")


def test_lamost_header_with_unexpected_layout(lamost_dir, tmp_path):
    hdr = _header(lamost_dir / "spec-57798-HD084529N184902V01_sp03-150.fits")
    raw = _raw(lamost_dir / "spec-57798-HD084529N184902V01_sp03-150.fits")
    image = tmp_path / "three-rows.fits"
    fits.PrimaryHDU(np.stack([raw["FLUX"], raw["IVAR"], raw["WAVELENGTH"]]).astype(np.float32),
                    header=hdr).writeto(image)
    _assert_data_error(image, "unexpected layout.*shape")
    no_obsid = tmp_path / "no-obsid.fits"
    del hdr["OBSID"]
    fits.PrimaryHDU(np.stack(list(raw.values())).astype(np.float32), header=hdr).writeto(no_obsid)
    _assert_data_error(no_obsid, "OBSID")
    table = tmp_path / "table-no-masks.fits"
    head = _header(lamost_dir / "spec-57798-HD084529N184902V01_sp03-150.fits")
    cols = [fits.Column(name=k, format=f"{raw[k].size}E", array=raw[k][None, :]) for k in ("FLUX", "IVAR", "WAVELENGTH")]
    primary = fits.PrimaryHDU(header=fits.Header([c for c in head.cards if not c.keyword.startswith("NAXIS")]))
    fits.HDUList([primary, fits.BinTableHDU.from_columns(cols, name="COADD")]).writeto(table)
    _assert_data_error(table, "ANDMASK")


def test_a_file_whose_header_says_air_is_made_vacuum(lamost_dir, tmp_path):
    """Found by a bad-input hunt: VACUUM = F was not read, and the spectrum was taken as vacuum
    (every sample file says T)."""
    from slamfw import air_to_vacuum
    name = "spec-57798-HD084529N184902V01_sp03-150.fits"
    assert _header(lamost_dir / name)["VACUUM"] is True
    with fits.open(lamost_dir / name, memmap=False) as hdul:
        hdul[0].header["VACUUM"] = False
        hdul.writeto(tmp_path / "air.fits", output_verify="silentfix+ignore")
    vacuum, air = read_lamost_file(lamost_dir / name), read_lamost_file(tmp_path / "air.fits")
    assert air.medium == "vacuum" and np.all(air.wave > vacuum.wave)
    np.testing.assert_allclose(air.wave, air_to_vacuum(vacuum.wave), rtol=1e-12)
    np.testing.assert_array_equal(air.flux, vacuum.flux)


def test_wavelength_row_checks(lamost_dir, tmp_path):
    """A wavelength row that decreases, is not log-linear, or disagrees with COEFF0/COEFF1 -> DataError."""
    name = "spec-57798-HD084529N184902V01_sp03-150.fits"
    wave = _raw(lamost_dir / name)["WAVELENGTH"]
    swapped = _write_modified(lamost_dir / name, tmp_path / "swapped.fits", {"WAVELENGTH": {10: wave[12]}})
    _assert_data_error(swapped, "increase strictly")
    with fits.open(lamost_dir / name, memmap=False) as hdul:
        hdul[0].data[2] = np.linspace(wave[0], wave[-1], wave.size)  # linear, not log-linear
        hdul.writeto(tmp_path / "linear.fits")
        hdul[0].data[2] = wave * 10 ** 0.0005  # log-linear but 5 pixels off COEFF0
        hdul.writeto(tmp_path / "shifted.fits")
    _assert_data_error(tmp_path / "linear.fits", "not log-linear")
    _assert_data_error(tmp_path / "shifted.fits", "disagrees with the header")
