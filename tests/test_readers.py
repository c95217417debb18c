from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from slamfw import DataError, registry
from slamfw_plugins.readers import miles as miles_mod
from slamfw_plugins.readers import mockspec


def test_miles_reader(miles_dir):
    ss = registry.create("reader", "miles", {"path": str(miles_dir), "where": {"Teff": [4000, 7000]}}).read()
    assert ss.label_names == ["Teff", "logg", "FeH"] and ss.label_units == ["K", "dex", "dex"]
    assert 540 <= ss.n_stars <= 600  # SOURCE.md: 582 stars have 4000 < Teff < 7000
    assert np.all((ss.labels[:, 0] >= 4000) & (ss.labels[:, 0] <= 7000))
    np.testing.assert_allclose(ss.wave[:3], [3540.5, 3541.4, 3542.3])
    assert ss.n_pixels == 4300 and all(i.startswith("m") and len(i) == 5 for i in ss.ids)
    # ivar from the assumed S/N; non-positive flux is masked
    good = ss.mask
    np.testing.assert_allclose(ss.ivar[good], (100.0 / ss.flux[good]) ** 2)
    assert np.all(ss.ivar[~good] == 0)
    i = ss.ids.tolist().index("m0272")
    np.testing.assert_allclose(ss.labels[i], [6024, 4.50, -1.44])


def test_miles_params_table_fallback(miles_dir, tmp_path):
    db = miles_mod.read_params_db(miles_dir / "MILES_params.db")
    txt = miles_mod.read_params_txt(miles_dir / "paramsMILES_v9.1.txt")
    assert "m0221" in db  # the '022.' typo
    common = sorted(set(db) & set(txt))
    assert len(common) > 700
    a = np.array([db[k] for k in common])
    b = np.array([txt[k] for k in common])
    both = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[both], b[both])
    # a directory with only the text table
    for f in sorted(miles_dir.glob("MILES_res2.50_star_m00*.fits"))[:5]:
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "paramsMILES_v9.1.txt").symlink_to(miles_dir / "paramsMILES_v9.1.txt")
    ss = registry.create("reader", "miles", {"path": str(tmp_path)}).read()
    assert 1 <= ss.n_stars <= 5


def test_miles_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        registry.create("reader", "miles", {"path": str(tmp_path / "nope")}).read()
    with pytest.raises(DataError, match="no MILES FITS files"):
        registry.create("reader", "miles", {"path": str(tmp_path)}).read()


def test_miles_bad_parameters_and_headers_and_an_odd_first_file(miles_dir, tmp_path, caplog):
    """A parameter that is not a number leaves that star out with a warning naming the line (it was
    an internal error in MILES_params.db), '--' is missing there as in the text table, a byte that
    is not UTF-8 does not stop the reading; a file without CDELT1 or with a text CRVAL1 is rejected
    naming the keyword (numpy's TypeError before); a file on another grid is the odd one even when
    it is read first (it rejected every other file)."""
    from astropy.io import fits
    files = sorted(miles_dir.glob("MILES_res2.50_star_m00*.fits"))[:6]
    names = [miles_mod._FILE.search(f.name).group(1) for f in files]
    for f in files[2:]:
        (tmp_path / f.name).symlink_to(f)
    with fits.open(files[0]) as hdul:
        hdul[0].header["CRVAL1"] += 5.0                   # another grid, read first
        hdul.writeto(tmp_path / files[0].name)
    with fits.open(files[1]) as hdul:
        del hdul[0].header["CDELT1"]
        hdul.writeto(tmp_path / files[1].name)
    lines = [f"{n[1:]} 5000 4.5 0.0" for n in names]
    lines[2] = f"{names[2][1:]} 5000 -- 0.0"
    lines[3] = f"{names[3][1:]} 5000 nan? 0.0"
    (tmp_path / "MILES_params.db").write_bytes(("\n".join(lines) + "\n# caf\xe9\n").encode("latin-1"))
    with caplog.at_level("WARNING"):
        reader = registry.create("reader", "miles", {"path": str(tmp_path)})
        ss = reader.read()
    assert ss.ids.tolist() == [names[2], names[4], names[5]]
    assert np.isnan(ss.labels[0, 1]) and ss.labels[1, 1] == 4.5
    assert f"MILES_params.db, line 4: cannot parse the parameters of {names[3]}" in caplog.text
    why = dict((Path(p).name, r) for p, r in reader.rejected_)
    assert why[files[1].name].endswith("no CDELT1 (nor CD1_1) wavelength keyword in the header")
    assert why[files[0].name].startswith("its wavelength grid differs from that of the 3 files that share one")
    with fits.open(files[1]) as hdul:
        hdul[0].header["CRVAL1"] = "3540.5"
        hdul.writeto(tmp_path / files[1].name, overwrite=True)
    reader.read()
    assert "CRVAL1 is '3540.5', not a finite number" in dict((Path(p).name, r) for p, r in reader.rejected_)[
        files[1].name]


def test_table_reader_formats(tmp_path):
    rng = np.random.default_rng(0)
    wave = np.linspace(4000, 4100, 50)
    flux = 1 + 0.01 * rng.normal(size=(4, 50))
    ivar = np.full((4, 50), 1e4)
    teff = np.array([5000.0, 5500, 6000, 6500])
    np.savez(tmp_path / "s.npz", wave=wave, flux=flux, ivar=ivar, id=np.array(list("abcd")), Teff=teff,
             snr=np.full(4, 50.0))
    t = Table({"id": list("abcd"), "flux": flux, "ivar": ivar, "Teff": teff})
    t["Teff"].unit = "K"
    t.meta["wave"] = wave.tolist()
    t.write(tmp_path / "s.ecsv")
    t2 = t.copy()
    t2.meta = {}
    t2["wave"] = np.tile(wave, (4, 1))
    t2.write(tmp_path / "s.fits")
    for name in ("s.npz", "s.ecsv", "s.fits"):
        ss = registry.create("reader", "table", {"path": str(tmp_path / name)}).read()
        assert ss.ids.tolist() == list("abcd") and ss.label_names == ["Teff"], name
        np.testing.assert_allclose(ss.flux, flux)
        np.testing.assert_allclose(ss.wave, wave)
    assert registry.create("reader", "table", {"path": str(tmp_path / "s.npz")}).read().meta["snr"][0] == 50
    ss = registry.create("reader", "table", {"path": str(tmp_path / "s.npz"), "where": {"Teff": [5400, 6100]}}).read()
    assert ss.ids.tolist() == ["b", "c"]


def _big_table(tmp_path, n=700, p=400):
    """Files whose flux and ivar members are over 1 MB (read a piece at a time by iter_chunks)."""
    rng = np.random.default_rng(1)
    wave = np.linspace(4000.0, 4400.0, p)
    flux = (1 + 0.01 * rng.normal(size=(n, p))).astype(np.float32)
    flux[5, 7] = np.nan                                    # bad pixel (ivar 0): read as flux 0, masked
    ivar = np.full((n, p), 1e4, np.float32)
    ivar[5, 7] = 0.0
    teff = rng.uniform(4500.0, 6500.0, n)                  # a `where` on it keeps scattered rows
    ids = np.array([f"s{i}" for i in range(n)])
    np.savez(tmp_path / "big.npz", wave=wave, flux=flux, ivar=ivar, id=ids, Teff=teff, snr=np.full(n, 50.0))
    np.savez_compressed(tmp_path / "bigz.npz", wave=wave, flux=flux, ivar=ivar, id=ids, Teff=teff)
    grids = np.tile(wave, (n, 1))
    grids[n // 2:] *= 1.0001                               # two grids: a grid per star
    t = Table({"id": ids, "wave": grids, "flux": flux, "ivar": ivar, "Teff": teff})
    t.write(tmp_path / "big.fits")
    np.savez(tmp_path / "bigw.npz", wave=grids, flux=flux, ivar=ivar, id=ids, Teff=teff)   # the same, in an npz
    return flux


def test_table_reader_streams_large_files_piece_by_piece(tmp_path):
    """iter_chunks reads an npz file's uncompressed (N, P) members a piece at a time (and
    memory-maps a FITS file): each piece equals the same rows of read(), in memory and writable;
    compressed members and a grid per star stream too, and ``where`` selects the same stars."""
    from slamfw_plugins.readers.table import _FileRows, _load_columns
    flux = _big_table(tmp_path)
    cols, _, _ = _load_columns(tmp_path / "big.npz", lazy=True)
    assert isinstance(cols["flux"], _FileRows) and isinstance(cols["Teff"], np.ndarray)
    np.testing.assert_array_equal(cols["flux"][[3, 4, 9, 10, 11]], flux[[3, 4, 9, 10, 11]])
    np.testing.assert_array_equal(cols["flux"][698:], flux[698:])
    assert isinstance(_load_columns(tmp_path / "bigz.npz", lazy=True)[0]["flux"], np.ndarray)
    import shutil
    shutil.copy(tmp_path / "big.npz", tmp_path / "cut.npz")
    cut = _load_columns(tmp_path / "cut.npz", lazy=True)[0]["flux"]
    with open(tmp_path / "cut.npz", "r+b") as fh:                       # cut short afterwards: a clear error
        fh.truncate(cut.offset + 1000)
    with pytest.raises(DataError, match="shorter than"):
        cut[0:10]
    # one row by its number (a bad-input hunt: np.diff of that 0-d index failed, so an uncompressed npz with a
    # grid per star was an internal error in predict)
    np.testing.assert_array_equal(cols["flux"][5], flux[5])
    for name, where in (("big.npz", {}), ("big.npz", {"Teff": [5000, 6000]}), ("bigz.npz", {}), ("big.fits", {}),
                        ("bigw.npz", {})):
        reader = registry.create("reader", "table", {"path": str(tmp_path / name), "where": where})
        whole = reader.read()
        parts = list(reader.iter_chunks(300))
        assert [p.n_stars for p in parts] == [min(300, whole.n_stars - s) for s in range(0, whole.n_stars, 300)]
        for attr in ("ids", "flux", "ivar", "mask", "labels", "wave"):
            got = np.concatenate([getattr(p, attr) for p in parts]) if attr != "wave" or whole.wave.ndim == 2 \
                else parts[-1].wave
            np.testing.assert_array_equal(got, getattr(whole, attr), err_msg=f"{name} {where} {attr}")
        assert all(p.flux.flags.writeable and type(p.flux) is np.ndarray for p in parts)
        assert whole.wave.ndim == (2 if name.endswith("fits") or name == "bigw.npz" else 1)
        if not where:
            np.testing.assert_array_equal(whole.flux[4:7], np.where(np.isfinite(flux[4:7]), flux[4:7], 0.0))
            assert not whole.mask[5, 7] and whole.mask[5, 6]
        else:
            assert whole.n_stars < 700 and np.all((whole.labels[:, 0] >= 5000) & (whole.labels[:, 0] <= 6000))


def test_table_reader_describes_its_chunks_for_the_workers(tmp_path, monkeypatch):
    """chunk_sources: for an npz file whose (N, P) arrays are read a piece at a time, small picklable
    descriptions whose read() gives iter_chunks' pieces, in any process (the conformance check
    passes, with ``where`` too); None where the arrays are read whole (compressed npz); a bad star
    is reported by the piece that holds it, as iter_chunks does."""
    import pickle

    from slamfw.testing import check_reader
    from slamfw_plugins.readers.table import TableChunk, TableReader
    _big_table(tmp_path)
    for where in ({}, {"Teff": [5000, 6000]}):
        reader = registry.create("reader", "table", {"path": str(tmp_path / "big.npz"), "where": where})
        sources = list(reader.chunk_sources(300))
        parts = list(reader.iter_chunks(300))
        assert all(isinstance(s, TableChunk) for s in sources) and [s.n_stars for s in sources] == [p.n_stars for p in parts]
        for src, part in zip(sources, parts):
            blob = pickle.dumps(src)
            assert len(blob) < 2000 + 200 * src.n_stars        # the rows' ids and labels, not their spectra
            got = pickle.loads(blob).read()
            assert got.fingerprint() == part.fingerprint() and got.meta.keys() == part.meta.keys()
            assert all(np.array_equal(got.meta[k], part.meta[k]) for k in part.meta)
        assert all(r.passed for r in check_reader(TableReader, {"path": str(tmp_path / "big.npz"), "where": where}))
    opened = []
    with monkeypatch.context() as m:                 # decided without opening the file's arrays
        m.setattr(TableReader, "_open", lambda self, lazy: opened.append(lazy))
        for name in ("bigz.npz", "missing.npz"):
            assert registry.create("reader", "table", {"path": str(tmp_path / name)}).chunk_sources(300) is None
    assert opened == []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path)                       # a relative path: the rows are found from any folder
    first = next(registry.create("reader", "table", {"path": "big.npz"}).chunk_sources(300))
    monkeypatch.chdir(tmp_path / "b")
    (tmp_path / "b" / "big.npz").write_bytes(b"another file of the same name")
    got = pickle.loads(pickle.dumps(first)).read()
    assert got.n_stars == 300 and got.ids[0] == "s0"
    np.testing.assert_array_equal(got.flux, registry.create("reader", "table", {"path": str(tmp_path / "big.npz")}
                                                            ).read().flux[:300])
    flux, ivar = np.ones((700, 400)), np.ones((700, 400))
    ivar[650, 3] = -1.0
    np.savez(tmp_path / "bad.npz", wave=np.linspace(4000.0, 4400.0, 400), flux=flux, ivar=ivar,
             id=np.array([f"s{i}" for i in range(700)]))
    sources = list(registry.create("reader", "table", {"path": str(tmp_path / "bad.npz")}).chunk_sources(300))
    assert sources[1].read().n_stars == 300
    with pytest.raises(DataError, match="star 's650'.*ivar -1.0"):
        sources[2].read()


def test_table_reader_describes_the_chunks_of_a_fits_table(tmp_path, monkeypatch):
    """A FITS table, not gzipped, whose flux, ivar, mask and per-star wave hold one row of numbers
    or logicals per star, unscaled (as ``slamfw convert`` writes .fits): descriptions that read
    the rows from the file, whose read() gives iter_chunks' pieces (the kit passes, with
    ``where`` too); None, decided from the headers, for .fits.gz and a scaled flux column."""
    import gzip
    import pickle

    from astropy.io import fits

    from slamfw.data.spectra_io import write_spectra_table
    from slamfw.testing import check_reader
    from slamfw_plugins.readers.table import TableReader, _FitsRows
    _big_table(tmp_path)                                          # big.fits: a grid per star, float32, no mask
    whole = registry.create("reader", "table", {"path": str(tmp_path / "big.npz")}).read()
    whole.meta["rv"] = np.where(np.arange(whole.n_stars) % 7 == 0, np.nan, 3.0)
    write_spectra_table(whole, tmp_path / "conv.fits")           # convert's writer: a logical mask
    for name, where in (("big.fits", {}), ("conv.fits", {}), ("conv.fits", {"Teff": [5000, 6000]})):
        params = {"path": str(tmp_path / name), "where": where}
        sources = list(registry.create("reader", "table", params).chunk_sources(300))
        parts = list(registry.create("reader", "table", params).iter_chunks(300))
        assert len(sources) == len(parts) and all(isinstance(s.cols["flux"], _FitsRows) for s in sources)
        assert ("wave" in sources[0].cols) == (name == "big.fits") and ("mask" in sources[0].cols) == (name != "big.fits")
        for src, part in zip(sources, parts):
            blob = pickle.dumps(src)
            assert len(blob) < 2000 + 200 * src.n_stars
            got = pickle.loads(blob).read()
            assert got.fingerprint() == part.fingerprint() and got.meta.keys() == part.meta.keys()
            assert all(np.array_equal(got.meta[k], part.meta[k], equal_nan=True) for k in part.meta)
        assert all(r.passed for r in check_reader(TableReader, params))
    first = next(registry.create("reader", "table", {"path": str(tmp_path / "conv.fits")}).chunk_sources(300)).read()
    assert not first.mask[5, 7] and first.mask[5, 6] and first.flux.dtype == np.float64   # the bad pixel stays bad
    (tmp_path / "conv.fits.gz").write_bytes(gzip.compress((tmp_path / "conv.fits").read_bytes()))
    cols = [fits.Column(name="id", format="3A", array=np.array(["a", "b", "c"])),
            fits.Column(name="wave", format="4D", array=np.tile(np.linspace(4000.0, 4003.0, 4), (3, 1))),
            fits.Column(name="flux", format="4I", array=np.full((3, 4), 1000, np.int16)),
            fits.Column(name="ivar", format="4E", array=np.ones((3, 4)))]
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["TSCAL3"], hdu.header["TZERO3"] = 0.001, 0.0          # flux = 0.001 x the stored integers
    hdu.writeto(tmp_path / "scaled.fits")
    opened = []
    with monkeypatch.context() as m:
        m.setattr(TableReader, "_open", lambda self, lazy: opened.append(lazy))
        for name in ("conv.fits.gz", "scaled.fits"):
            assert registry.create("reader", "table", {"path": str(tmp_path / name)}).chunk_sources(2) is None
    assert opened == []
    np.testing.assert_allclose(registry.create("reader", "table", {"path": str(tmp_path / "scaled.fits")}).read().flux,
                               1.0)                                # read whole, scaled by astropy


def test_fits_tables_the_workers_do_not_read_and_a_file_that_changes(tmp_path):
    """Read in the calling process, as astropy reads them (no description): a gzipped file under
    a .fits name, rows padded beyond their columns, an unsigned integer column (TZERO), an integer
    column with a null value, and a header astropy refuses (which reading then reports, naming the
    file). A description read after its file changed is refused."""
    import gzip

    from astropy.io import fits

    from slamfw.data.spectra_io import write_spectra_table
    _big_table(tmp_path)
    whole = registry.create("reader", "table", {"path": str(tmp_path / "big.npz")}).read()
    write_spectra_table(whole, tmp_path / "conv.fits")
    (tmp_path / "gz.fits").write_bytes(gzip.compress((tmp_path / "conv.fits").read_bytes()))

    def table(name, flux_format, flux, **kw):
        cols = [fits.Column(name="id", format="3A", array=np.array(["a", "b", "c"])),
                fits.Column(name="wave", format="4D", array=np.tile(np.linspace(4000.0, 4003.0, 4), (3, 1))),
                fits.Column(name="flux", format=flux_format, array=flux, **kw),
                fits.Column(name="ivar", format="4E", array=np.ones((3, 4)))]
        fits.BinTableHDU.from_columns(cols).writeto(tmp_path / name)
    table("uint.fits", "4J", np.full((3, 4), 3_000_000_000, np.uint32), bzero=2 ** 31)
    table("null.fits", "4J", np.full((3, 4), 7, np.int32), null=-1)
    table("padded.fits", "4E", np.ones((3, 4), np.float32))
    raw = bytearray((tmp_path / "padded.fits").read_bytes())    # NAXIS1 4 bytes more than the columns
    i = raw.find(b"NAXIS1  =")
    row = int(raw[i + 10:i + 30])
    raw[i:i + 80] = f"NAXIS1  = {row + 4:>20d}".ljust(80).encode()
    (tmp_path / "padded.fits").write_bytes(bytes(raw))
    table("badform.fits", "4E", np.ones((3, 4), np.float32))
    raw = bytearray((tmp_path / "badform.fits").read_bytes())
    i = raw.find(b"TFORM3  =")
    raw[i:i + 80] = "TFORM3  = '6Z      '".ljust(80).encode()
    (tmp_path / "badform.fits").write_bytes(bytes(raw))
    for name in ("gz.fits", "uint.fits", "null.fits", "padded.fits", "badform.fits"):
        assert registry.create("reader", "table", {"path": str(tmp_path / name)}).chunk_sources(2) is None, name
    got = registry.create("reader", "table", {"path": str(tmp_path / "gz.fits")}).read()
    assert got.fingerprint() == registry.create("reader", "table", {"path": str(tmp_path / "conv.fits")}).read(
        ).fingerprint()
    with pytest.raises(DataError, match="badform.fits"):
        registry.create("reader", "table", {"path": str(tmp_path / "badform.fits")}).read()
    sources = list(registry.create("reader", "table", {"path": str(tmp_path / "conv.fits")}).chunk_sources(300))
    assert sources[0].read().n_stars == 300
    with open(tmp_path / "conv.fits", "ab") as fh:
        fh.write(b"\0" * 2880)
    with pytest.raises(DataError, match="changed while it was being read"):
        sources[1].read()


def test_reader_kit_catches_chunk_sources_that_read_other_rows(tmp_path):
    from slamfw import chunks
    from slamfw.testing import check_reader
    from slamfw_plugins.readers.table import TableChunk, TableReader, _stamp

    class OneRowOff(TableReader):
        def chunk_sources(self, chunk_size):
            cols, layout = self._open(lazy=True)
            arrays = {k: cols[k] for k in ("flux", "ivar")}
            return (TableChunk(self.path, arrays, layout, np.arange(s, e) + (e < 700), _stamp(cols["flux"].path))
                    for s, e in chunks(700, chunk_size))
    _big_table(tmp_path)
    results = check_reader(OneRowOff, {"path": str(tmp_path / "big.npz")}, raise_on_fail=False)
    assert {r.check: r.message for r in results if not r.passed} == {
        "check_chunk_sources": "chunk_sources(233): chunk 0's read() gives other flux than iter_chunks' piece 0"}


def test_table_reader_streaming_refuses_what_read_refuses(tmp_path):
    """Shapes, ids and duplicates are checked for the whole file before any piece is read (a
    piece alone could not see them), and the file's rows are never indexed out of range."""
    from slamfw_plugins.readers.table import _FileRows, _load_columns
    rng = np.random.default_rng(2)
    n, p = 600, 400
    wave, flux = np.linspace(4000.0, 4400.0, p), rng.normal(1.0, 0.01, (n, p))

    def reader(name, **cols):
        arrays = {"wave": wave, "flux": flux, "ivar": np.ones((n, p)), "id": np.array([f"s{i}" for i in range(n)])}
        arrays.update(cols)
        np.savez(tmp_path / name, **arrays)
        return registry.create("reader", "table", {"path": str(tmp_path / name)})
    for name, cols, match in (("ivar.npz", {"ivar": np.ones((n - 100, p))}, "ivar has shape .500, 400."),
                              ("mask.npz", {"mask": np.ones((n + 3, p), bool)}, "mask has shape .603, 400."),
                              ("wave.npz", {"wave": np.ones((n, p - 1))}, "wave has shape .600, 399."),
                              ("ids.npz", {"id": np.array([f"s{i}" for i in range(n + 3)])}, "603 star ids"),
                              ("dup.npz", {"id": np.array([f"s{i % 599}" for i in range(n)])},
                               "duplicate star ids 's0'$"),
                              # a radial velocity or S/N column of the wrong length was left out: unshifted spectra
                              ("rv.npz", {"rv": np.zeros(n - 2)}, "'rv' of shape .598,.; each must hold one value "
                                                                  "per spectrum, .600,."),
                              ("rv2.npz", {"rv": np.zeros((n, 2))}, "'rv' of shape .600, 2."),
                              ("snr.npz", {"snr": np.ones(n + 1)}, "'snr' of shape .601,."),
                              # an empty file, or no pixels: internal errors (IndexError, numpy's ValueError)
                              ("empty.npz", {"flux": np.ones((0, p)), "ivar": np.ones((0, p)), "wave": np.ones((0, p)),
                                             "id": np.array([], str)}, "holds no spectra .flux has shape .0, 400.."),
                              ("nopix.npz", {"flux": np.ones((n, 0)), "ivar": np.ones((n, 0)), "wave": np.ones(0)},
                               "holds no pixels"),
                              # a complex flux lost its imaginary part, with only numpy's ComplexWarning
                              ("cx.npz", {"flux": flux * (1 + 0.1j)}, "flux holds complex128 values, not real numbers"),
                              ("str.npz", {"ivar": np.ones((n, p)).astype(str)}, "ivar holds <U32 values"),
                              # and so were a complex label or rv column; a text label failed inside numpy
                              ("cxrv.npz", {"rv": np.zeros(n) * 1j}, "column 'rv' holds complex128 values"),
                              ("cxteff.npz", {"Teff": np.full(n, 5000 + 1j), "label_names": np.array(["Teff"])},
                               "column 'Teff' holds complex128 values")):
        for how in ("read", "iter_chunks"):
            with pytest.raises(DataError, match=match):
                r = reader(name, **cols)
                r.read() if how == "read" else list(r.iter_chunks(200))
    # spectra without a finite rv are warned about (they are fitted unshifted), naming them
    rv = np.zeros(n)
    rv[[5, 9]] = np.nan
    import logging
    from unittest import mock
    with mock.patch.object(logging.getLogger("slamfw_plugins.readers.table"), "warning") as warned:
        reader("rvnan.npz", rv=rv).read()
    assert any("2 spectra have no finite rv (s5, s9)" in (c.args[0] % c.args[1:]) for c in warned.call_args_list)
    # a per-band S/N (N, k) is left out, with a warning; a single spectrum's scalar rv is its rv
    per_band = reader("band.npz", snr=np.ones((n, 2))).read()
    assert "snr" not in per_band.meta
    np.savez(tmp_path / "single.npz", wave=wave, flux=flux[:1], ivar=np.ones((1, p)), rv=np.float64(30.0))
    assert registry.create("reader", "table", {"path": str(tmp_path / "single.npz")}).read().meta["rv"].tolist() == [30.0]
    rows = _load_columns(tmp_path / "ivar.npz", lazy=True)[0]["flux"]
    assert isinstance(rows, _FileRows)
    for bad in ([598, 600], [-1, 3], [5, 4], np.array([True, False])):
        with pytest.raises(IndexError):
            rows[bad]
    # one star on a grid long enough for its (1, P) arrays to be read from the file
    big = np.linspace(4000.0, 4400.0, 140_000)
    np.savez(tmp_path / "one.npz", wave=big, flux=np.ones((1, big.size)), ivar=np.ones((1, big.size)))
    one = registry.create("reader", "table", {"path": str(tmp_path / "one.npz")})
    assert isinstance(_load_columns(tmp_path / "one.npz", lazy=True)[0]["flux"], _FileRows)
    (piece,) = one.iter_chunks(10)
    np.testing.assert_array_equal(piece.flux, one.read().flux)


def test_table_reader_bad_values(tmp_path):
    wave = np.linspace(4000, 4100, 10)
    flux = np.ones((2, 10))
    flux[1, 3] = np.nan
    np.savez(tmp_path / "nan.npz", wave=wave, flux=flux, ivar=np.ones((2, 10)), id=np.array(["x", "y"]))
    with pytest.raises(DataError, match=r"star 'y'.*NaN/inf flux at 1 good pixel.*4033.33 A"):
        registry.create("reader", "table", {"path": str(tmp_path / "nan.npz")}).read()
    ivar = np.ones((2, 10))
    ivar[1, 3] = 0  # NaN where ivar is 0 is fine: becomes a bad pixel
    np.savez(tmp_path / "nan_ok.npz", wave=wave, flux=flux, ivar=ivar)
    ss = registry.create("reader", "table", {"path": str(tmp_path / "nan_ok.npz")}).read()
    assert ss.flux[1, 3] == 0 and not ss.mask[1, 3]
    ivar[0, 0] = -1
    np.savez(tmp_path / "neg.npz", wave=wave, flux=np.ones((2, 10)), ivar=ivar)
    with pytest.raises(DataError, match=r"ivar -1.0 < 0"):
        registry.create("reader", "table", {"path": str(tmp_path / "neg.npz")}).read()
    np.savez(tmp_path / "noflux.npz", wave=wave, ivar=ivar)
    with pytest.raises(DataError, match="no 'flux'"):
        registry.create("reader", "table", {"path": str(tmp_path / "noflux.npz")}).read()
    # a numeric column taken for a label because the file names none: the error says how to name them
    np.savez(tmp_path / "plx.npz", wave=wave, flux=np.ones((2, 10)), ivar=np.ones((2, 10)), id=np.array(["x", "y"]),
             Teff=np.array([5000.0, 6000.0]), plx=np.array([1.0, np.inf]))
    with pytest.raises(DataError, match=r"column 'plx' is infinite for star 'y'; the file names no labels, so every "
                                        r"numeric column \(Teff, plx\) was taken for one: name them"):
        registry.create("reader", "table", {"path": str(tmp_path / "plx.npz")}).read()
    ss = registry.create("reader", "table", {"path": str(tmp_path / "plx.npz"), "labels": ["Teff"]}).read()
    assert ss.label_names == ["Teff"]
    # text saved as bytes in an npz file was read as its repr, "b'air'", and refused as no medium
    np.savez(tmp_path / "bytes.npz", wave=wave, flux=np.ones((2, 10)), ivar=np.ones((2, 10)), medium=np.bytes_(b"air"),
             wave_unit=np.array(b"nm"), Teff=np.array([5000.0, 6000.0]), label_names=np.array([b"Teff"]))
    ss = registry.create("reader", "table", {"path": str(tmp_path / "bytes.npz")}).read()
    assert ss.medium == "air" and ss.label_names == ["Teff"] and ss.wave[0] == pytest.approx(40000.0)


@pytest.mark.parametrize("suffix", [".ecsv", ".fits"])
def test_table_reader_empty_cells_are_missing_values(tmp_path, suffix):
    """An empty cell (an ECSV's empty field, a FITS integer column's TNULL) was read as the value
    stored under it, 0 or the TNULL number: a training star with Teff 0 K, an rv of 0 km/s with no
    flag_rv, a flux 0 at a good pixel. Now a label or rv is unknown (NaN), a flux or ivar pixel is
    bad, and an empty id is an error naming the row. FITS writes an empty float cell as NaN, and a
    NaN flux at a good pixel is refused there as in an npz file."""
    from astropy.table import MaskedColumn
    n, p = 6, 8
    wave = np.linspace(4000.0, 4070.0, p)
    flux_empty = np.zeros((n, p), bool)
    flux_empty[2, [1, 5]] = True
    if suffix == ".fits":
        flux_empty[:] = False
    t = Table({"id": [f"s{i}" for i in range(n)],
               "wave": np.broadcast_to(wave, (n, p)),
               "flux": MaskedColumn(np.full((n, p), 0.9), mask=flux_empty),
               "ivar": np.ones((n, p)),
               "rv": MaskedColumn(np.arange(n, dtype=float), mask=np.arange(n) == 4),
               "Teff": MaskedColumn(np.arange(5000, 5000 + n), mask=np.arange(n) == 3, unit="K"),
               "logg": np.full(n, 4.5)})
    if suffix == ".fits":
        t["Teff"].fill_value = 999999            # written as TNULL
    t.write(tmp_path / f"cells{suffix}")
    ss = registry.create("reader", "table", {"path": str(tmp_path / f"cells{suffix}")}).read()
    assert ss.label_names == ["Teff", "logg"]
    np.testing.assert_array_equal(ss.labels[:, 0], [5000, 5001, 5002, np.nan, 5004, 5005])
    np.testing.assert_array_equal(ss.meta["rv"], [0, 1, 2, 3, np.nan, 5])
    np.testing.assert_array_equal(~ss.mask, flux_empty)
    assert (ss.ivar[flux_empty] == 0).all() and (ss.flux[~flux_empty] == 0.9).all()
    t["id"] = MaskedColumn(t["id"], mask=np.arange(n) == 1)
    t.write(tmp_path / f"noid{suffix}")
    with pytest.raises(DataError, match=r"column 'id' has empty cells, in row\(s\) 1 \(counted from 0\)"):
        registry.create("reader", "table", {"path": str(tmp_path / f"noid{suffix}")}).read()
    t["id"] = [f"s{i}" for i in range(n)]
    t["flux"][2, 1:3] = np.nan
    t.write(tmp_path / f"nan{suffix}")
    with pytest.raises(DataError, match=r"star 's2'.*NaN/inf flux at 2 good pixel"):
        registry.create("reader", "table", {"path": str(tmp_path / f"nan{suffix}")}).read()


def test_table_reader_empty_flux_and_ivar_cells_beside_a_mask(tmp_path):
    """Empty flux and ivar cells (ECSV) are bad pixels beside the file's own mask; a mask of the wrong
    shape is still refused, naming it, when flux has an empty cell (it was replaced by the empty
    cells, silently)."""
    from astropy.table import MaskedColumn
    n, p = 3, 6
    flux_empty, ivar_empty, masked = (np.zeros((n, p), bool) for _ in range(3))
    flux_empty[0, 1], ivar_empty[1, 4], masked[2, 2] = True, True, True
    t = Table({"wave": np.tile(np.linspace(4000.0, 4050.0, p), (n, 1)),
               "flux": MaskedColumn(np.full((n, p), 0.9), mask=flux_empty),
               "ivar": MaskedColumn(np.ones((n, p)), mask=ivar_empty), "mask": ~masked, "Teff": [5000.0] * n})
    t.write(tmp_path / "cells.ecsv")
    ss = registry.create("reader", "table", {"path": str(tmp_path / "cells.ecsv")}).read()
    np.testing.assert_array_equal(~ss.mask, flux_empty | ivar_empty | masked)
    assert (ss.ivar[flux_empty | ivar_empty] == 0).all() and (ss.flux[ss.mask] == 0.9).all()
    t["mask"] = np.ones((n, p - 1), bool)
    t.write(tmp_path / "short_mask.ecsv")
    with pytest.raises(DataError, match=r"mask has shape \(3, 5\), flux \(3, 6\)"):
        registry.create("reader", "table", {"path": str(tmp_path / "short_mask.ecsv")}).read()


def test_table_reader_converts_the_metadata_to_its_units(tmp_path, caplog):
    """An rv column in m/s was read as km/s (1000 times too large), ra in radians as degrees; a
    dimensionless rv (a redshift) is refused, and one without a unit whose values are all tiny is
    warned about."""
    import astropy.units as u
    n, p = 3, 5
    t = Table({"wave": np.tile(np.linspace(4000.0, 4040.0, p), (n, 1)), "flux": np.ones((n, p)),
               "ivar": np.ones((n, p)),
               "rv": [-25788.0, 413.0, 0.0] * (u.m / u.s), "ra": [0.5, 1.0, 2.0] * u.rad, "Teff": [5000.0] * n})
    t.write(tmp_path / "units.ecsv")
    ss = registry.create("reader", "table", {"path": str(tmp_path / "units.ecsv")}).read()
    np.testing.assert_allclose(ss.meta["rv"], [-25.788, 0.413, 0.0])
    np.testing.assert_allclose(ss.meta["ra"], np.degrees([0.5, 1.0, 2.0]))
    t2 = t.copy()                                   # a FITS header's capitals, and an S/N with a unit of its own
    t2["rv"] = u.Quantity([-25.0, 0.4, 0.0], u.km / u.s)
    t2["snr"] = [10.0, 20.0, 30.0] * u.Unit("1 / pix")
    t2.write(tmp_path / "caps.fits")
    from astropy.io import fits
    with fits.open(tmp_path / "caps.fits", mode="update") as hdul:
        hdul[1].header[f"TUNIT{t2.colnames.index('rv') + 1}"] = "KM/S"
    ss = registry.create("reader", "table", {"path": str(tmp_path / "caps.fits")}).read()
    np.testing.assert_allclose(ss.meta["rv"], [-25.0, 0.4, 0.0])
    np.testing.assert_array_equal(ss.meta["snr"], [10.0, 20.0, 30.0])
    t["rv"] = [-8.6e-5, 1.4e-6, 0.0] * u.dimensionless_unscaled
    t.write(tmp_path / "z.ecsv")
    with pytest.raises(DataError, match=r"column 'rv' has the unit '', which is not convertible to km / s .*"
                                        r"for a redshift z, write rv = c z in km/s"):
        registry.create("reader", "table", {"path": str(tmp_path / "z.ecsv")}).read()
    t["rv"] = np.array([-8.6e-5, 1.4e-6, 0.0])
    t.write(tmp_path / "z_bare.ecsv")
    with caplog.at_level("WARNING"):
        ss = registry.create("reader", "table", {"path": str(tmp_path / "z_bare.ecsv")}).read()
    assert "every rv is below 0.1 km/s in size (the largest 8.6e-05)" in caplog.text
    np.testing.assert_array_equal(ss.meta["rv"], t["rv"])


def test_mock_reader_deterministic_and_labelled():
    kw = {"n_stars": 20, "n_pixels": 300, "seed": 3, "snr": [10, 100]}
    a = registry.create("reader", "mock", kw).read()
    b = registry.create("reader", "mock", kw).read()
    np.testing.assert_array_equal(a.flux, b.flux)
    assert a.meta["snr"].tolist()[:3] == [10, 100, 10]
    c = registry.create("reader", "mock", dict(kw, seed=4)).read()
    assert not np.allclose(a.labels, c.labels)


def test_mock_model_balmer_peaks_near_9000K_and_defeats_a_quadratic():
    """The demo needs non-linear lines: H-beta core depth peaks near 9000 K."""
    wave = np.array([4861.33])
    teff = np.linspace(4000, 12000, 161)
    depth = 1 - mockspec.normalized_flux(wave, teff, np.full_like(teff, 4.0), np.zeros_like(teff))[:, 0]
    assert 8500 <= teff[np.argmax(depth)] <= 9500
    # over 4000-9500 K (labels varying), a quadratic in the labels fits H-beta far worse than a smooth model
    rng = np.random.default_rng(0)
    n = 400
    t, g, z = rng.uniform(4000, 9500, n), rng.uniform(1, 5, n), rng.uniform(-2, 0.5, n)
    f = mockspec.normalized_flux(wave, t, g, z)[:, 0]
    x = np.column_stack([(t - 6750) / 1600, (g - 3) / 1.2, (z + 0.75) / 0.7])
    design = np.column_stack([np.ones(n), x] + [x[:, i] * x[:, j] for i in range(3) for j in range(i, 3)])
    resid = f - design @ np.linalg.lstsq(design, f, rcond=None)[0]
    assert np.var(resid) / np.var(f) > 0.03  # a quadratic leaves > 3% of the variance unexplained
    # metal lines: deeper for metal-rich and cool stars
    fe = np.array([5269.54])
    d = lambda T, Z: 1 - mockspec.normalized_flux(fe, np.array([T]), np.array([4.0]), np.array([Z]))[0, 0]
    assert d(5000, 0.0) > d(5000, -1.5) and d(5000, 0.0) > d(8000, 0.0)
