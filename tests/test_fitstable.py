"""The readers' binary-table columns read from the header and the bytes
(plugins/slamfw_plugins/readers/_fitstable.py): astropy's values, column by column, on the real
APOGEE and LAMOST sample tables and on a table of every format, with astropy reading what the
reader does not."""
from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from slamfw_plugins.readers._fitstable import BinTable, column_names


class _NoData:
    """An HDU whose data astropy must not be asked for: a column read through it is read from the bytes."""

    def __init__(self, hdu):
        self.header, self.fileinfo = hdu.header, hdu.fileinfo

    @property
    def data(self):
        raise AssertionError("astropy's data was read")


def _same(ours: np.ndarray, astropy_values) -> None:
    ref = np.asarray(astropy_values)
    assert ours.shape == ref.shape
    if ref.dtype.kind in "SU":       # astropy strips trailing blanks, and may decode to str
        assert ours.dtype.kind in "SU"
        ours = np.char.rstrip(np.char.decode(ours, "ascii") if ours.dtype.kind == "S" and ref.dtype.kind == "U"
                              else ours)
        ref = np.char.rstrip(ref)
        np.testing.assert_array_equal(ours, ref)
        return
    assert ours.dtype == ref.dtype                  # byte order too
    np.testing.assert_array_equal(ours, ref)        # NaN == NaN here; the bits of every other value


def _tables(folder: Path):
    for path in sorted(folder.glob("*.fits*")):
        with fits.open(path, memmap=False) as hl:
            for i, hdu in enumerate(hl):
                if isinstance(hdu, fits.BinTableHDU):
                    yield path, i


def test_every_column_of_the_apogee_sample_tables_is_astropys_read_from_the_bytes(apogee_dir):
    n = 0
    for path, i in _tables(apogee_dir):
        with fits.open(path, memmap=False) as hl:
            ours = BinTable(_NoData(hl[i]), path)
            assert ours.names == list(hl[i].columns.names) == column_names(hl[i].header)
            assert len(ours) == len(hl[i].data)
            for name in ours.names:
                _same(ours[name], hl[i].data[name])
                assert name.lower() in ours and name.upper() in ours
                n += 1
    assert n == 495             # 12 tables of 23 to 72 columns


def test_compressed_files_are_read_by_astropy(lamost_dir, apogee_dir, tmp_path):
    gz = tmp_path / "aspcap.fits.gz"
    with open(apogee_dir / "aspcapStar-r6-l30e.2-2M17334253-1654573.fits", "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    paths = [gz, *sorted(lamost_dir.glob("*.fits.gz"))]
    for path in paths:
        with fits.open(path, memmap=False) as hl:
            for hdu in hl:
                if isinstance(hdu, fits.BinTableHDU):
                    with pytest.raises(AssertionError, match="astropy's data was read"):
                        BinTable(_NoData(hdu), path)[hdu.columns.names[0]]
                    table = BinTable(hdu, path)
                    for name in table.names:
                        _same(table[name], hdu.data[name])


def _every_format(path: Path) -> fits.BinTableHDU:
    rng = np.random.default_rng(3)
    n = 4
    cols = [
        fits.Column("flag", "L", array=np.array([True, False, True, True])),
        fits.Column("flags", "3L", array=rng.random((n, 3)) > 0.5),
        fits.Column("byte", "B", array=np.arange(n, dtype=np.uint8) + 250),
        fits.Column("short", "I", array=np.array([-3, 0, 7, 32767], np.int16)),
        fits.Column("int", "J", array=np.array([-(2 ** 31), 1, 2, 3], np.int32)),
        fits.Column("long", "2K", array=rng.integers(-(2 ** 62), 2 ** 62, (n, 2))),
        fits.Column("name", "12A", array=np.array(["a", "bb  c", "", "twelve chars"])),
        fits.Column("float", "E", array=np.array([1.5, np.nan, -np.inf, 3e38], np.float32)),
        fits.Column("cube", "24D", dim="(2,3,4)", array=rng.normal(size=(n, 4, 3, 2))),
        fits.Column("words", "15A", dim="(5,3)", array=np.array([["ab", "cd", "efghi"]] * n)),
        fits.Column("bits", "5X", array=rng.random((n, 5)) > 0.5),                # astropy reads these
        fits.Column("cplx", "C", array=np.array([1 + 2j, 0, -1j, 3], np.complex64)),
        fits.Column("unsigned", "I", bzero=32768, array=np.array([0, 1, 40000, 65535], np.uint16)),
        fits.Column("scaled", "J", array=np.array([1, 2, 5, -9], np.int32)),     # TSCAL14/TZERO14 added below
        fits.Column("after", "D", array=np.array([1.0, 2.0, 3.0, 4.0])),        # after them: still read here
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    with fits.open(path, mode="update") as hl:
        hl[1].header["TSCAL14"], hl[1].header["TZERO14"] = 0.5, 1.0


def test_every_format_is_astropys_and_the_ones_it_cannot_read_go_to_astropy(tmp_path):
    path = tmp_path / "formats.fits"
    _every_format(path)
    astropy_only = {"bits", "cplx", "unsigned", "scaled"}
    with fits.open(path, memmap=False) as hl:
        ours, guarded = BinTable(hl[1], path), BinTable(_NoData(hl[1]), path)
        for name in ours.names:
            _same(ours[name], hl[1].data[name])
            if name in astropy_only:
                with pytest.raises(AssertionError, match="astropy's data was read"):
                    guarded[name]
            else:
                _same(guarded[name], hl[1].data[name])
        assert list(ours["scaled"]) == [1.5, 2.0, 3.5, -3.5]
        assert ours["flags"].dtype == bool and ours["cube"].shape == (4, 4, 3, 2) and ours["words"].shape == (4, 3)
        ours["after"][0] = 99.0                                # a copy: the table's bytes are not touched
        assert ours["after"][0] == 1.0
        ours["unsigned"][0] = 7                                # and astropy's column a copy too
        assert hl[1].data["unsigned"][0] == 0
        _same(guarded["After "], hl[1].data["after "])         # case and trailing blanks ignored, as astropy does
        with pytest.raises(KeyError, match="no column 'missing' in the table"):
            ours["missing"]


def test_a_variable_length_column_goes_to_astropy_and_the_columns_around_it_do_not(tmp_path):
    """A ``P`` column's bytes are descriptors into the heap (8 per row): astropy reads it; the
    columns after it are at the right offsets."""
    path = tmp_path / "vla.fits"
    cols = [fits.Column("x", "D", array=np.array([1.0, 2.0])),
            fits.Column("v", "PD()", array=np.array([np.array([1.0]), np.array([2.0, 3.0])], dtype=object)),
            fits.Column("y", "J", array=np.array([5, 6], np.int32))]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    with fits.open(path, memmap=False) as hl:
        guarded = BinTable(_NoData(hl[1]), path)
        _same(guarded["x"], hl[1].data["x"])
        _same(guarded["y"], hl[1].data["y"])
        with pytest.raises(AssertionError, match="astropy's data was read"):
            guarded["v"]
        v = BinTable(hl[1], path)["v"]
        assert [list(row) for row in v] == [[1.0], [2.0, 3.0]]


def test_a_row_longer_than_its_columns_sends_every_column_to_astropy(tmp_path):
    """NAXIS1 beyond the columns' bytes: a layout the reader does not follow."""
    path = tmp_path / "padded.fits"
    _every_format(path)
    with fits.open(path, mode="update") as hl:
        hl[1].header["TFORM15"] = "E"            # 4 bytes of the last column's 8 are now unaccounted for
    with fits.open(path, memmap=False) as hl:
        with pytest.raises(AssertionError, match="astropy's data was read"):
            BinTable(_NoData(hl[1]), path)["flag"]


def test_a_null_logical_is_false_as_in_astropy(tmp_path):
    """FITS logicals are "T", "F" or a null byte (undefined): astropy reads the null as False."""
    path = tmp_path / "null.fits"
    _every_format(path)
    with fits.open(path, memmap=False) as hl:
        loc, row = hl[1].fileinfo()["datLoc"], hl[1].header["NAXIS1"]
    with open(path, "r+b") as fh:                   # "flag" is each row's first byte: row 1's F becomes null
        fh.seek(loc + row)
        assert fh.read(1) == b"F"
        fh.seek(loc + row)
        fh.write(b"\0")
    with fits.open(path, memmap=False) as hl, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*NULL")
        assert list(hl[1].data["flag"]) == [True, False, True, True]
        assert list(BinTable(_NoData(hl[1]), path)["flag"]) == [True, False, True, True]


def test_names_that_differ_only_in_case_are_astropys(tmp_path):
    """astropy matches a name's exact case first: "FLUX" and "flux" are two columns."""
    path = tmp_path / "case.fits"
    cols = [fits.Column("flux", "D", array=np.array([1.0, 2.0])), fits.Column("FLUX", "D", array=np.array([3.0, 4.0])),
            fits.Column("ivar", "E", array=np.array([5.0, 6.0], np.float32))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # astropy warns of the two names
        fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    with fits.open(path, memmap=False) as hl:
        table = BinTable(hl[1], path)
        assert list(table["flux"]) == [1.0, 2.0] and list(table["FLUX"]) == [3.0, 4.0]
        _same(BinTable(_NoData(hl[1]), path)["IVAR"], hl[1].data["ivar"])      # the others: from the bytes
