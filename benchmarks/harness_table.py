"""Survey files for the harness: the mock reader's observed spectra written as ``table`` npz files.

The harness times ``slamfw predict MODEL --reader table --reader-param path=FILE`` as a survey user
runs it, so the spectra must exist as a file before the clock starts. :func:`write_mock_tables`
draws the mock survey once, chunk by chunk (memory does not grow with N), into raw ``.npy``
memmaps, and then assembles one or more ``.npz`` files (``docs/table-format.md``) from row ranges
of them by streaming copies: flux and ivar as float32 (N, P) on the mock's native grid
(un-normalised, observed frame), ``wave`` (P,), ``id``, ``snr``, ``rv``, and the true labels as
label columns (``label_names`` / ``label_units`` metadata), which ``slamfw predict`` carries into
the catalogue as ``<label>_true``.

npz rather than FITS: the ``table`` reader reads it faster (``compare_read_speed``: 2000 spectra
in 0.09 s from npz, 0.12 s from FITS as ``slamfw convert`` writes it, measured 2026-11-27 on the
harness's 2-core machine), and, stored uncompressed, it can be written without holding the
arrays in memory, and ``slamfw predict`` streams it (the ``table`` reader reads it a chunk of
rows at a time).

Drawing the spectra costs about 10 ms each on one core (the mock reader shifts each star by its
RV), outside the timed region: 10^6 of them would take about 3 hours here. ``draw`` caps the
spectra drawn; the rows beyond it repeat the drawn ones in order, under their own ids
(``mock00012-r3``: row 12's spectrum, 3rd repeat), so that a file of 10^6 spectra costs the
drawing of ``draw``. The files carry a ``.json`` sidecar and are reused by later runs.
"""
from __future__ import annotations

import json
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np

LABELS = ["Teff", "logg", "FeH"]
UNITS = ["K", "dex", "dex"]
#: The test survey of case (a): the harness's earlier ``--reader-param`` settings.
MOCK = {"seed": 7, "snr": [20, 50, 100], "rv_sigma": 20.0}
#: The native grid of the demo's test survey (``examples/demo/experiment.toml``).
GRID = {"n_pixels": 1900, "wave_range": [3900.0, 5800.0]}


def _npy_member(zf: zipfile.ZipFile, name: str, src: np.ndarray | None = None, raw: Path | None = None,
                rows: tuple[int, int] | None = None, dtype=None, shape=None) -> None:
    """Write one ``name.npy`` member: either the array ``src``, or rows [a, b) of the C-ordered
    .npy file ``raw`` of ``shape`` (copied in pieces, never in memory whole), row i being row
    ``i % len(raw)`` of it (rows beyond the drawn ones repeat them)."""
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        if src is not None:
            np.lib.format.write_array(fh, np.asarray(src), allow_pickle=False)
            return
        a, b = rows
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": (b - a, *shape[1:])}
        np.lib.format.write_array_header_2_0(fh, header)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
        mm = np.load(raw, mmap_mode="r")
        step = max(1, min((64 << 20) // max(row_bytes, 1), mm.shape[0]))
        for s in range(a, b, step):
            e = min(b, s + step)
            block = mm[s:e] if e <= mm.shape[0] else mm[np.arange(s, e) % mm.shape[0]]
            fh.write(np.ascontiguousarray(block).tobytes())
        del mm


def write_mock_tables(parts: list[tuple[Path, int, int]], n_stars: int, chunk: int = 1000,
                      mock: dict | None = None, log=print, draw: int | None = None) -> dict:
    """Draw ``n_stars`` spectra (at most ``draw`` of them, the rest repeating those) from the
    ``mock`` reader (``MOCK`` and ``GRID`` settings, updated by ``mock``) and write each ``(path,
    start, stop)`` of ``parts`` as a ``table`` npz file of those rows. Files already there with a
    matching ``.json`` sidecar (same settings and rows) are kept. Returns {"generate_s",
    "write_s", "reused": [paths]}."""
    from slamfw import registry
    import slamfw_plugins  # noqa: F401  (registers the readers)

    drawn = min(int(n_stars), int(draw or n_stars))
    params = {**MOCK, **GRID, **(mock or {}), "n_stars": drawn}
    todo, reused = [], []
    for path, a, b in parts:
        want = {"mock": params, "rows": [int(a), int(b)], "format": "table-npz-v1"}
        if drawn < n_stars:
            want["repeated_to"] = int(n_stars)
        side = Path(path).with_suffix(".json")
        if Path(path).is_file() and side.is_file() and json.loads(side.read_text()) == want:
            reused.append(str(path))
        else:
            todo.append((Path(path), int(a), int(b), want))
    out = {"generate_s": 0.0, "write_s": 0.0, "reused": reused}
    if not todo:
        return out
    reader = registry.create("reader", "mock", params)
    tmp = Path(todo[0][0]).parent / f".mock-{n_stars}-raw"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    flux = ivar = None
    ids = np.empty(drawn, dtype=f"<U{len('mock') + len(str(drawn - 1))}")
    labels = np.empty((drawn, 3))
    snr, rv = np.empty(drawn), np.empty(drawn)
    done = 0
    for part in reader.iter_chunks(chunk):
        if flux is None:
            wave = np.asarray(part.wave, float)
            shape = (drawn, wave.size)
            flux = np.lib.format.open_memmap(tmp / "flux.npy", "w+", np.float32, shape)
            ivar = np.lib.format.open_memmap(tmp / "ivar.npy", "w+", np.float32, shape)
        s, e = done, done + part.n_stars
        flux[s:e], ivar[s:e] = part.flux, part.ivar
        ids[s:e], labels[s:e] = part.ids, part.labels
        snr[s:e], rv[s:e] = part.meta["snr"], part.meta["rv"]
        done = e
        if log and (done // chunk) % max(1, drawn // chunk // 10) == 0:
            log(f"  mock survey: {done}/{drawn} spectra drawn ({time.perf_counter() - t0:.0f} s)")
    flux.flush()
    ivar.flush()
    del flux, ivar
    out["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path, a, b, want in todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            _npy_member(zf, "wave", wave)
            for name in ("flux", "ivar"):
                _npy_member(zf, name, raw=tmp / f"{name}.npy", rows=(a, b), dtype=np.float32, shape=shape)
            rows = np.arange(a, b) % drawn
            repeat = np.arange(a, b) // drawn
            row_ids = ids[rows] if b <= drawn else np.char.add(ids[rows], np.where(
                repeat > 0, np.char.add("-r", repeat.astype(str)), ""))
            _npy_member(zf, "id", row_ids)
            for j, name in enumerate(LABELS):
                _npy_member(zf, name, labels[rows, j])
            _npy_member(zf, "snr", snr[rows])
            _npy_member(zf, "rv", rv[rows])
            _npy_member(zf, "label_names", np.array(LABELS))
            _npy_member(zf, "label_units", np.array(UNITS))
            _npy_member(zf, "wave_unit", np.array("Angstrom"))
        partial.replace(path)
        path.with_suffix(".json").write_text(json.dumps(want))
    out["write_s"] = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def compare_read_speed(n: int = 500, folder: Path | None = None) -> dict[str, float]:
    """Seconds for the ``table`` reader to read the same n mock spectra from npz and from FITS."""
    import tempfile

    from astropy.table import Table

    from slamfw import registry
    import slamfw_plugins  # noqa: F401

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        npz = Path(tmp) / "t.npz"
        write_mock_tables([(npz, 0, n)], n, log=None)
        with np.load(npz) as z:
            cols = {k: z[k] for k in z.files}
        t = Table({k: cols[k] for k in ("id", "flux", "ivar", *LABELS, "snr", "rv")})
        t["wave"] = np.broadcast_to(cols["wave"], cols["flux"].shape)   # as `slamfw convert` writes it
        t["wave"].unit = "Angstrom"
        t.meta["LABELS"] = ",".join(LABELS)
        fits = Path(tmp) / "t.fits"
        t.write(fits)
        res = {}
        for name, path in (("npz", npz), ("fits", fits)):
            best = np.inf
            for _ in range(3):
                t0 = time.perf_counter()
                registry.create("reader", "table", {"path": str(path)}).read()
                best = min(best, time.perf_counter() - t0)
            res[name] = best
    return res
