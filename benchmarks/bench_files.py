"""A survey of many files through the whole ``slamfw predict``: the files read by the calling
process, or by the executor's workers (prints, asserts nothing).

    python benchmarks/bench_files.py                      # 2000 LAMOST files, 2 workers (about 5 min)
    python benchmarks/bench_files.py --files 4000 --repeat 3 --model MODEL.npz

It writes ``--files`` LAMOST LRS files, copies of the sample files in ``../shared/data/lamost_samples``
(``SLAMFW_SHARED_DATA`` overrides the folder; the MRS file is left out), each with a new OBSID
written into its primary header (compressed files stay compressed). A model is trained on the
shipped demo config (mock spectra over 3900-5800 A; ``--model`` uses another), and the whole
``slamfw predict MODEL --reader lamost --data FOLDER --executor local --workers W`` process is
timed, alternately:

- as shipped: the ``lamost`` reader describes groups of files (``FileReader.chunk_sources``) and
  each worker reads, prepares and infers its own;
- with ``chunk_sources`` off (a wrapper sets it to None): the calling process reads every file,
  one after another, and sends the spectra to the workers, as slamfw did before.

It prints each run's wall time, milliseconds per file, the calling process's own CPU time (user +
system, sampled by psutil every 0.1 s until it exits) and peak memory (the calling process, and
all its processes), the ratio of the medians, and whether the two catalogues are equal. The
calling process's extra CPU time per file when it reads the files (the difference of the two
ways' medians, start-up and model cancelling) bounds the rate of a run on any number of workers.
It also times reading one file in this process (``LamostReader.read_file``), which bounds the
calling process's rate when it reads. With ``--table`` it then converts the files into one FITS
table (``slamfw convert --reader lamost ... -o survey.fits``, timed) and times the same two ways on
it (``--reader table``): the workers reading their rows of the table, or the calling process
reading them (memory-mapped) and sending them.
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import run_measured  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo" / "experiment.toml"
#: The calling process with chunk_sources off (the readers of files and the table reader): it
#: reads everything itself.
READS_HERE = ("import sys; from slamfw.components.file_reader import FileReader; "
              "from slamfw_plugins.readers.table import TableReader; "
              "FileReader.chunk_sources = TableReader.chunk_sources = lambda self, chunk_size: None; "
              "from slamfw.cli import main; sys.exit(main(sys.argv[1:]))")


def shared_data() -> Path:
    return Path(os.environ.get("SLAMFW_SHARED_DATA", REPO.parent / "shared" / "data"))


def with_obsid(data: bytes, obsid: int) -> bytes:
    """A FITS file's bytes with the primary header's OBSID card's value replaced by ``obsid``."""
    for m in re.finditer(rb"OBSID   =", data):
        if m.start() % 80 == 0:
            card = f"OBSID   = {obsid:>20d} / unique spectrum id (bench_files copy)".ljust(80).encode()
            return data[:m.start()] + card + data[m.start() + 80:]
    raise ValueError("no OBSID card")


def write_survey(folder: Path, n_files: int) -> list[Path]:
    """``n_files`` copies of the LRS sample files, in turn, each with its own OBSID."""
    samples = sorted(p for p in (shared_data() / "lamost_samples").glob("spec-*.fits*"))
    if not samples:
        raise SystemExit(f"no LAMOST LRS samples (spec-*.fits*) in {shared_data() / 'lamost_samples'}")
    raw = [(p.name.endswith(".gz"), gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes())
           for p in samples]
    folder.mkdir(parents=True)
    out = []
    for k in range(n_files):
        gz, data = raw[k % len(raw)]
        path = folder / f"spec-bench-{k:07d}.fits{'.gz' if gz else ''}"
        body = with_obsid(data, 900_000_000 + k)
        path.write_bytes(gzip.compress(body, compresslevel=6) if gz else body)
        out.append(path)
    return out


def read_rate(files: list[Path], n: int = 200) -> float:
    """Milliseconds to read one file in this process (the best of two passes over ``n`` files)."""
    from slamfw_plugins.readers.lamost import LamostReader
    reader = LamostReader(path=str(files[0].parent))
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        for f in files[:n]:
            reader.read_file(f)
        best = min(best, (time.perf_counter() - t0) / min(n, len(files)))
    return 1e3 * best


def catalogue(path: Path):
    import warnings

    from astropy.table import Table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # 'dex' is not a FITS unit
        t = Table.read(path)
    t.sort("id")
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=2000, help="LAMOST files to write and label (default 2000)")
    p.add_argument("--workers", type=int, default=2, help="the local executor's workers (default 2)")
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--repeat", type=int, default=2, help="runs of each way, alternating (default 2)")
    p.add_argument("--model", type=Path, help="a model (default: trained on the demo config, about a minute)")
    p.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder)")
    p.add_argument("--table", action="store_true", help="then also `slamfw convert` the files into a FITS table "
                   "and time `slamfw predict` on it both ways (the table reader)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = args.model
        if model is None:
            model = work / "model" / "model.npz"
            print("training the demo's model ...", flush=True)
            subprocess.run([sys.executable, "-m", "slamfw.cli", "train", str(DEMO), "--set",
                            f"output.dir={model.parent}"], check=True, capture_output=True)
        files = write_survey(work / "survey", args.files)
        print(f"{len(files)} LAMOST files ({sum(f.stat().st_size for f in files) / 2 ** 20:.0f} MB) in "
              f"{files[0].parent}; {os.cpu_count()} cores; reading one file in this process: "
              f"{read_rate(files):.2f} ms", flush=True)
        compare(model, ["--reader", "lamost", "--data", str(files[0].parent)], len(files), "file", work / "files",
                args)
        if args.table:
            table = work / "survey.fits"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "slamfw.cli", "convert", "--reader", "lamost", "--data",
                            str(files[0].parent), "-o", str(table), "--force"], check=True, capture_output=True)
            print(f"slamfw convert: the {len(files)} files into {table.name} ({table.stat().st_size / 2 ** 20:.0f} MB) "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
            compare(model, ["--reader", "table", "--reader-param", f"path={table}"], len(files), "spectrum",
                    work / "table", args)


def compare(model: Path, data_args: list[str], n: int, unit: str, folder: Path, args: argparse.Namespace) -> None:
    """Time ``slamfw predict MODEL DATA_ARGS`` both ways, alternating, and print the figures."""
    folder.mkdir(parents=True, exist_ok=True)
    ways = {"workers read": [sys.executable, "-m", "slamfw.cli"],
            "this process reads": [sys.executable, "-c", READS_HERE]}
    rows: dict[str, list[dict]] = {w: [] for w in ways}
    for r in range(args.repeat):
        for way, cmd in ways.items():
            out = folder / f"{way.replace(' ', '-')}-{r}.fits"
            res = run_measured([*cmd, "predict", str(model), *data_args, "--executor", "local", "--workers",
                                str(args.workers), "--chunk-size", str(args.chunk_size), "-o", str(out), "--force"],
                               keep_log=True)
            res["out"] = out
            rows[way].append(res)
            print(f"{way:>19}: {res['wall_s']:7.1f} s, {1e3 * res['wall_s'] / n:6.2f} ms per {unit}; "
                  f"the calling process's CPU {res['cpu_self_s']:.1f} s; peak memory {res['peak_self_mb']:.0f} MB "
                  f"(calling process), {res['peak_tree_mb']:.0f} MB (all)", flush=True)
    med = {w: statistics.median(r["wall_s"] for r in rows[w]) for w in ways}
    cpu = {w: statistics.median(r["cpu_self_s"] for r in rows[w]) for w in ways}
    extra = (cpu["this process reads"] - cpu["workers read"]) / n
    print(f"the calling process's CPU (median): workers read {cpu['workers read']:.2f} s, this process reads "
          f"{cpu['this process reads']:.2f} s: {1e3 * extra:.2f} ms more per {unit}"
          + (f", so that when it reads, a run labels at most about {1 / extra:.0f} per second, whatever its workers"
             if extra > 0 else ""))
    print(f"median: workers read {1e3 * med['workers read'] / n:.2f} ms per {unit}, this process reads "
          f"{1e3 * med['this process reads'] / n:.2f} ms per {unit}: "
          f"{med['this process reads'] / med['workers read']:.2f}x")
    a, b = (catalogue(rows[w][0]["out"]) for w in ways)
    same = a.colnames == b.colnames and len(a) == len(b) and all(
        (a[c] == b[c]).all() if a[c].dtype.kind in "USO" else np.array_equal(a[c], b[c], equal_nan=True)
        for c in a.colnames)
    print(f"catalogues: {len(a)} and {len(b)} stars; the same stars and columns, equal: {same}")


if __name__ == "__main__":
    main()
