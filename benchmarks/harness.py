"""slamfw against the original codes, on the same data, the same cores, in one run (prints; asserts nothing).

    python benchmarks/harness.py --quick             # small subsets: checks that the harness runs (minutes)
    python benchmarks/harness.py --case a            # the demo survey, 1000 training stars x 500 pixels
    python benchmarks/harness.py --case b            # MILES FGK, 468 training stars x 1901 pixels
    python benchmarks/harness.py --case c            # the APOGEE-like mock, 2000 training stars x 7214 pixels
    python benchmarks/harness.py --case c --slamfw-pixel-step 4   # slamfw on every 4th pixel only (says so)
    python benchmarks/harness.py --case b --quick    # (b) or (c) on small subsets (a minute or two)
    python benchmarks/harness.py --case a --no-reference    # slamfw's side only
    python benchmarks/harness.py --case a --n-reference 100 # astroslam infers 100 spectra (default 20)
    python benchmarks/harness.py --case a --write-results   # and record the figures in benchmarks/RESULTS.md
    python benchmarks/harness.py --case a --work W          # keep the work folder W (model, data, results)
    python benchmarks/harness.py --case a --reuse-work W    # reuse W's trained model and reference results
    python benchmarks/harness.py --scaling [--quick]        # the scaling series only (see below)

Case (a) is the demo's mock survey (4000-9500 K, S/N 200 training set, spline-normalised, on a
3.6 A grid: 1000 stars x 501 pixels, 3 labels); its test set is the demo's (S/N 20, 50, 100).
Both sides get the same prepared (normalised, resampled) spectra, in the same order, and the same
settings: SVR grid C in {1, 10, 100}, gamma in {0.01, 0.1, 1}, epsilon 0.05, 5 unshuffled folds
(slamfw's ``shuffle_folds = false``, as astroslam's GridSearchCV), 2 processes.

For each side it prints training wall time, median CV MSE, the fraction of pixels where both
chose the same (C, gamma) or a near-tie (the CV MSE at slamfw's choice within 1 % of the CV MSE,
on slamfw's grid, at astroslam's choice), inference time per spectrum, label bias and scatter
against the truth, model size and peak memory, and the ratios reference / slamfw.

slamfw's inference is timed as a survey user runs it: before the clock starts, the harness writes
``--n-predict`` observed mock spectra (the mock reader's output: un-normalised, on its native
1900-pixel grid, with ivar, S/N 20/50/100, RV spread 20 km/s, seed 7) into a ``table`` npz file
(``harness_table.py``; npz reads faster than FITS), true labels as label columns; then it times
the whole ``slamfw predict MODEL --reader table --reader-param path=FILE -o CAT --workers 2``
process (read, normalise, resample, fit, write; the default executor, local processes, as a user
types it: built without loading the plugins, so its workers start first). The reference codes infer
``--n-reference`` prepared spectra; the label table shows slamfw on exactly those spectra (the
first n_reference of the prepared test set, the model's batched ``lm`` in this process), next to
astroslam, and, on a separate row, slamfw's figures over all the predicted stars.

Cases (b) and (c) (their data: ``harness_cases.py``). (b) is MILES FGK, ``examples/miles/experiment.toml``
with the issue's settings as ``--set`` overrides (1 A grid, 1901 pixels; 468 training stars, the 117
held-back stars the test set); (c) an APOGEE-like 5-label mock survey (2000 training and 2000 test
stars on the native 7214-pixel APOGEE grid, already normalised), written into WORK/case-c with its
experiment file before anything is timed. slamfw trains every pixel; astroslam trains every 4th
pixel of (b) and every 20th of (c), and the per-pixel comparison (same choice or near-tie, and a
median CV MSE of slamfw's on those pixels) is on astroslam's pixels; the report gives training time
and model size per pixel as well. slamfw's inference is the whole ``slamfw predict`` process on the
case's own test files as a user runs it: (b) the MILES library folder through the ``miles`` reader
(the experiment's Teff selection reads 588 stars; time per spectrum over all 588; the label figures
over the 117 held-back test stars among them), (c) the test npz through the ``table`` reader (time and
labels over its 2000 stars). data.npz (the references' input) is the prepared training set and the
prepared test set of the experiment; the report checks that it holds the spectra ``slamfw predict``
prepares (the catalogue's labels of the first test stars against slamfw's in-process labels on
data.npz). ``--slamfw-pixel-step K`` (c only; K divides 20): the survey is written on every K-th
pixel, so slamfw trains and predicts on those pixels only (its training on all 7214 pixels x 2000
stars takes many hours on 2 cores), while astroslam trains the same pixels as without it; the report
says so in bold, and its RESULTS.md marker names the step.

Every case runs ``slamfw predict`` twice: with the model's ``lm`` (3 starts spread over label space,
slamfw's default) and with ``--inferer-param n_starts=1`` (the paper's and astroslam's single start
from the best-matching training spectrum), both in the table next to astroslam, and the
same-spectra labels with both, so that like can be compared with like.

Floating-point rates (``harness_flops.py``): numpy's GEMM on one BLAS thread and on all; the batched
least squares (FLOPs as ``batched_lm`` counts them) on one process with one BLAS thread, against
the one-thread GEMM rate, and on two processes at once (the spectra in halves, one thread each,
wall time of the pair), against the all-thread GEMM rate (on at most 2000 test spectra, fewer on a
long grid: 554 on case (c)'s 7214 pixels). It also times The Cannons next to slamfw's ``cannon``.

Order: slamfw's training, then astroslam's (so that the training comparison is complete first), then
slamfw's inference timings, then the Cannons. The work folder's record (``harness-record.json``) is
written after each training, so a run stopped later (a long case: (c) on all pixels takes about
three hours) leaves both trainings for ``--reuse-work`` to reuse, with their figures and their date.

``--reuse-work DIR``: where DIR (an earlier ``--work``) holds a finished slamfw model, astroslam's
and the Cannons' results for the same case and the same data, they are reused instead of
retrained and rerun, and the report says which figures were reused and from when; everything else
is measured again (for every case). Same data: DIR/data.npz's arrays are this run's prepared spectra, bit for bit
(their SHA-256) or to a relative ``--reuse-rtol`` (default 1e-8: only rounding moved); and the
model's grid and the references' settings are the case's. What does not match stops the run with
the reason (``--retrain-if-needed``: train and run it again instead). New files go to ``--work``
(default: a temporary folder), never into DIR; table files of earlier runs (DIR/tables,
DIR/scaling/tables) are reused when their sidecar settings match.

``--scaling`` runs the scaling series instead of the comparison (``harness_scaling.py``), with case
(a)'s model (trained, or reused with ``--reuse-work``): the whole ``slamfw predict`` process from
table files for N = 10^3, 10^4, 10^5 spectra (up to ``--scaling-max``; 10^6 with
``--scaling-max 1000000``; at most ``--scaling-draw`` spectra drawn, the rows beyond repeating
them under their own ids), local executor, 2 workers (``--scaling-n-starts K``: lm's n_starts for
this series; ``--scaling-executors local,dask``: the dask executor's LocalCluster too, one after
the other on the same files), with ms per spectrum and peak memory; slamfw's emulator training time for M = 250, 500, 1000 stars (up to
``--scaling-train-max``; 2000 and 4000 on request) with a fitted power law; and a projection for
LAMOST DR5 (8 million spectra, 100 cores, Dask), with its assumptions. ``--quick``: N = 200, 2000
and M = 100, 200 on the quick grid.

The reference codes (astroslam, Casey's and Ho's Cannons, unmodified, from PyPI) run in their
own virtual environment, which ``benchmarks/reference/env.py`` builds on first use.
Set SLAMFW_SHARED_DATA to read the shared data from elsewhere than ../shared/data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEMO = REPO / "examples" / "demo" / "experiment.toml"
sys.path.insert(0, str(HERE))


from bench_predict import run_measured  # noqa: E402
from harness_cases import CaseData  # noqa: E402
from harness_cases import case_b as case_b_data  # noqa: E402
from harness_cases import case_c as case_c_data  # noqa: E402
from harness_cases import ordinal  # noqa: E402
from harness_flops import blas_threads, flop_rates, gemm_rate  # noqa: E402
from harness_table import MOCK, write_mock_tables  # noqa: E402

#: What the harness records in its work folder, for ``--reuse-work``.
RECORD = "harness-record.json"
#: ``--reuse-work``: prepared spectra equal to this relative tolerance count as the same data.
RTOL = 1e-8
#: The second timed ``slamfw predict``: the paper's and astroslam's single start.
SINGLE_START = ["--inferer-param", "n_starts=1"]
#: The third: the single start with the jacobian's products in float32 (``lm``'s extension).
SINGLE_PRECISION = [*SINGLE_START, "--inferer-param", "jacobian_precision=single"]
#: The fourth: the single start with the batched solver's secant steps (``lm``'s ``steps``; the
#: default, MINPACK's, is the per-star solver's path).
SECANT_STEPS = [*SINGLE_START, "--inferer-param", "steps=secant"]


def logged_seconds(log: str, words: str) -> float | None:
    """The seconds in the last log line ``<words> <seconds> s`` (slamfw's "training took 51.5 s")."""
    import re
    found = re.findall(rf"{re.escape(words)} ([0-9.]+) s", log)
    return float(found[-1]) if found else None

GRID = {"C": [1.0, 10.0, 100.0], "gamma": [0.01, 0.1, 1.0], "epsilon": 0.05, "n_folds": 5}
QUICK_GRID = {"C": [1.0, 100.0], "gamma": [0.1, 1.0], "epsilon": 0.05, "n_folds": 3}


@dataclass
class Case:
    """One comparison: an experiment config (the demo's for (a)) with ``--set`` overrides, and how much to run."""

    name: str
    sets: list[str]
    grid: dict[str, Any]
    n_predict: int                     # (a): spectra of the survey table; (b), (c): the catalogue's rows (set by run)
    n_reference: int
    reference_pixels: int = 1          # astroslam trains every k-th pixel
    notes: list[str] = field(default_factory=list)
    config: Path = DEMO                # the experiment slamfw trains (and the prepared spectra come from)
    predict_args: list[str] | None = None   # the data of `slamfw predict` (None: (a)'s survey table)
    predict_what: str = ""             # what `slamfw predict` reads, for the report
    held_back: bool = False            # the test set is data.train's held-back stars (MILES)
    text: str = ""                     # the case's paragraph (b, c)
    slamfw_pixel_step: int = 1         # (c): slamfw's grid is every k-th pixel of the case's
    solver: str = "libsvm"             # slam's SVR solver (--slam-solver)

    def with_solver(self, solver: str) -> "Case":
        """This case with slam's ``solver`` (its name says so when it is not LIBSVM)."""
        if solver == "libsvm":
            return self
        from dataclasses import replace
        return replace(self, name=f"{self.name}, slam solver {solver}", solver=solver,
                       sets=[*self.sets, f"emulator.slam.solver={solver}"])


def case_a(quick: bool, n_predict: int | None) -> Case:
    grid = QUICK_GRID if quick else GRID
    stars, step = (200, 18.0) if quick else (1000, 3.6)
    sets = [f"data.train.mock.n_stars={stars}", f"preprocess.wave_step={step}", "calibration.enabled=false",
            "analyzers=[]", "emulator.name=slam", f"emulator.slam.C={grid['C']}",
            f"emulator.slam.gamma={grid['gamma']}", f"emulator.slam.epsilon={grid['epsilon']}",
            f"emulator.slam.n_folds={grid['n_folds']}", "emulator.slam.shuffle_folds=false"]
    return Case("a" + (" (quick)" if quick else ""), sets, grid, n_predict or (2000 if quick else 20000),
                n_reference=5 if quick else 20)


def case_from(data: CaseData, quick: bool, predict_what: str, pixel_step: int = 1) -> Case:
    """A harness case from ``harness_cases``' description of (b) or (c); ``pixel_step`` > 1 (case c's
    ``--slamfw-pixel-step``) is in its name, so its figures go under their own RESULTS.md marker."""
    name = data.name if pixel_step == 1 else data.name.replace(
        "c", f"c (slamfw on every {ordinal(pixel_step)} pixel only)", 1)
    return Case(name, data.sets, data.grid, n_predict=0, n_reference=5 if quick else 20,
                reference_pixels=data.reference_pixels, config=data.config,
                predict_args=list(data.predict_args), predict_what=predict_what, held_back=data.test_is_held_back,
                text=data.text, slamfw_pixel_step=pixel_step)


def case_b(quick: bool) -> Case:
    """MILES FGK: ``examples/miles/experiment.toml`` with the issue's settings (``harness_cases``)."""
    return case_from(case_b_data(quick), quick,
                     "the stars of the MILES library folder that the experiment's Teff selection keeps (FITS files "
                     "through the `miles` reader: read, RV-correct, normalise, resample, fit, write)")


def case_c(work: Path, quick: bool, pixel_step: int = 1) -> Case:
    """The APOGEE-like mock survey, written into ``work/case-c`` (``harness_cases``)."""
    return case_from(case_c_data(work / "case-c", quick, pixel_step=pixel_step), quick,
                     "the mock survey's test file (a `table` npz: spectra already continuum-normalised, on the "
                     "native APOGEE pixels, float32 flux and ivar; through the `table` reader: read, mask, fit, "
                     "write)", pixel_step)


# ---------------------------------------------------------------- measurements
def slamfw_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "slamfw.cli", *args]


def sets_args(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def label_stats(pred: np.ndarray, true: np.ndarray, names: list[str],
                bias: str = "median") -> dict[str, dict[str, float]]:
    """Per label: ``bias`` (the median, or with ``bias="mean"`` the mean, of pred - true), scatter
    (its standard deviation) and a robust scatter (1.4826 MAD), over the rows finite in every label."""
    d = pred - true
    ok = np.all(np.isfinite(d), axis=1)
    centre = np.median if bias == "median" else np.mean
    return {n: {"bias": float(centre(d[ok, j])), "scatter": float(np.std(d[ok, j])),
                "robust": float(1.4826 * np.median(np.abs(d[ok, j] - np.median(d[ok, j])))), "n": int(ok.sum())}
            for j, n in enumerate(names)}


def same_spectra_labels(model, data: Path, n: int, inferer_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """slamfw's labels on the first ``n`` prepared test spectra of ``data`` (those astroslam infers):
    the model's inferer (batched ``lm``, its parameters changed by ``inferer_params``) and prior, in
    this process; bias and scatter as astroslam's summary computes them (mean and standard
    deviation of pred - true)."""
    from slamfw import SerialExecutor, using_executor
    from slamfw.workflows.infer import call_infer, model_inferer, model_prior
    with np.load(data) as z:
        flux, ivar, true = z["test_flux"][:n], z["test_ivar"][:n], z["test_labels"][:n]
    inferer, prior = model_inferer(model, inferer_params), model_prior(model)
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        res = call_infer(inferer, model, flux, ivar, prior, np.array([f"test-{i}" for i in range(len(flux))]))
        wall = time.perf_counter() - t0
    return {"n": int(len(flux)), "labels": label_stats(np.asarray(res.labels, float), true, list(model.label_names),
                                                      bias="mean"),
            "ms_per_spectrum": 1e3 * wall / max(len(flux), 1), "_labels": np.asarray(res.labels, float)}


def per_star_time(model, test, n: int) -> float:
    """ms per spectrum of the one-by-one least squares (scipy), one process."""
    from slamfw import SerialExecutor, registry, using_executor
    lm = registry.create("inferer", "lm", {"batched": False})
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        lm.infer(model, test["test_flux"][:n], test["test_ivar"][:n])
    return 1e3 * (time.perf_counter() - t0) / n


# ---------------------------------------------------------------- work folders and reuse
def arrays_sha256(arrays: dict[str, np.ndarray], skip: tuple[str, ...] = ("pixels",)) -> str:
    """SHA-256 of the arrays (names, dtypes, shapes and bytes, in name order), ``skip`` left out."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        if k in skip:
            continue
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def mtime(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.stat().st_mtime))


def read_record(folder: Path | None) -> dict[str, Any]:
    if folder is None or not (folder / RECORD).is_file():
        return {}
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}


@dataclass
class Reuse:
    """An earlier work folder whose results may be reused (``--reuse-work``), and what was reused."""

    folder: Path
    record: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None          # of the folder's data.npz (None: no data.npz)
    arrays: dict[str, np.ndarray] | None = None           # the folder's data.npz
    data_same: bool | None = None           # is it this run's prepared data (None: not compared)
    data_note: str = ""
    used: list[str] = field(default_factory=list)        # lines for the report
    refused: list[str] = field(default_factory=list)
    retrain: bool = False                   # what cannot be reused is redone (else: stop with the reason)
    rtol: float = RTOL                      # prepared spectra equal to this relative tolerance are the same data

    def refuse(self, what: str, why: str) -> None:
        """Note that ``what`` cannot be reused; stop unless ``retrain``."""
        if not self.retrain:
            raise SystemExit(f"--reuse-work: cannot reuse {what} from {self.folder}: {why}\n(pass "
                             "--retrain-if-needed to train and run it again instead)")
        self.refused.append(f"{what} not reused (trained and run again): {why}")
        print(f"--reuse-work: {what} not reused: {why}", flush=True)

    @classmethod
    def open(cls, folder: Path) -> "Reuse":
        r = cls(folder.resolve(), read_record(folder))
        data = r.folder / "data.npz"
        if data.is_file():
            r.arrays = npz_arrays(data)
            r.data_sha256 = arrays_sha256(r.arrays)
        return r

    def compare(self, arrays: dict[str, np.ndarray], sha: str) -> bool:
        """Is the folder's data.npz this run's prepared data? Bit for bit (the SHA-256 of the
        arrays), or else equal to a relative ``RTOL`` (a change of rounding in the preparation,
        e.g. a faster normaliser, leaves the model and the references' results valid)."""
        if self.arrays is None:
            self.data_same, self.data_note = False, "the folder has no data.npz"
        elif sha == self.data_sha256:
            self.data_same, self.data_note = True, f"identical (SHA-256 of the arrays {sha[:16]}...)"
        else:
            old = {k: v for k, v in self.arrays.items() if k != "pixels"}
            if sorted(old) != sorted(arrays) or any(old[k].shape != arrays[k].shape or old[k].dtype != arrays[k].dtype
                                                    for k in arrays):
                self.data_same, self.data_note = False, "its arrays' names, shapes or types differ"
            else:
                worst, bad = 0.0, []
                for k, v in arrays.items():
                    if v.dtype.kind != "f":
                        if not np.array_equal(v, old[k]):
                            bad.append(k)
                        continue
                    if not np.allclose(v, old[k], rtol=self.rtol, atol=0.0, equal_nan=True):
                        bad.append(k)
                    d = np.abs(v - old[k])[np.isfinite(v) & np.isfinite(old[k])]
                    den = np.abs(old[k])[np.isfinite(v) & np.isfinite(old[k])]
                    if d.size:
                        worst = max(worst, float(np.max(d / np.where(den > 0, den, 1.0))))
                self.data_same = not bad
                self.data_note = (f"not bit-identical (SHA-256 {self.data_sha256[:12]} there, {sha[:12]} here) but "
                                  f"equal to a relative {self.rtol:g} (largest relative difference {worst:.2g})"
                                  if not bad else f"{', '.join(bad)} differ by more than a relative {self.rtol:g} "
                                  f"(largest {worst:.2g})")
        return bool(self.data_same)


def model_matches(model, case: Case) -> str | None:
    """Why the trained model is not one of ``case`` (None: it is)."""
    emu = model.emulator
    want = {"C": case.grid["C"], "gamma": case.grid["gamma"], "epsilon": case.grid["epsilon"],
            "n_folds": case.grid["n_folds"], "shuffle_folds": False, "solver": case.solver,
            "prune_grid": True}   # a model trained before pruning: its training time is not today's
    for k, v in want.items():
        got = getattr(emu, k, None)
        if (list(got) if isinstance(got, (list, tuple, np.ndarray)) else got) != v:
            return f"its emulator's {k} is {got!r}, the case's {v!r}"
    if type(emu).__name__.lower().find("slam") < 0:
        return f"its emulator is {type(emu).__name__}, not slam"
    return None


def train_slamfw(case: Case, work: Path) -> dict[str, Any]:
    """Train case's model in ``work/slamfw``; the training figures."""
    sets = [*case.sets, f"output.dir={work / 'slamfw'}"]
    print(f"slamfw: training ({' '.join(case.sets)}) ...", flush=True)
    r = run_measured(slamfw_cmd("train", str(case.config), *sets_args(sets), "--force", "--executor", "local",
                                "--workers", "2"), keep_log=True)
    # the emulator's training (as astroslam's train_pixels is timed), and the whole process
    return {"train_s": logged_seconds(r["log"], "training took") or r["wall_s"], "train_process_s": r["wall_s"],
            "train_peak_mb": r["peak_tree_mb"], "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def prepared_arrays(case: Case, model, sets: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The prepared training and test spectra both sides get (data.npz's arrays), and the test
    stars' ids (not in data.npz). The test set of a case whose test stars are held back from the
    training source (MILES) is those held-back stars."""
    from slamfw.config import load_config
    from slamfw.workflows.infer import prepare_for_model
    from slamfw.workflows.run import read_test
    from slamfw.workflows.train import prepare_training
    cfg = load_config(case.config, sets)
    prep = prepare_training(cfg)
    train = prep.train
    if not np.array_equal(train.labels, model.train_labels):
        raise RuntimeError("the training set differs from the model's")
    test = prepare_for_model(read_test(cfg, prep.held_ids if case.held_back else None), model)
    return ({"train_labels": train.labels, "train_flux": train.flux, "train_ivar": train.weight_ivar,
             "test_flux": test.flux, "test_ivar": test.weight_ivar, "test_labels": test.labels,
             "label_names": np.array(model.label_names), "wave": np.asarray(train.wave, float)},
            np.asarray(test.ids, dtype=str))


def slamfw_model(case: Case, work: Path, reuse: Reuse | None) -> dict[str, Any]:
    """Case's model (reused from ``reuse``'s folder when it is the case's, on the same data, else
    trained in ``work``), the prepared data written to ``work/data.npz``, and the training figures."""
    from slamfw.model import SlamfwModel
    sets = [*case.sets, f"output.dir={work / 'slamfw'}"]
    out: dict[str, Any] = {}
    if reuse is not None:
        path = reuse.folder / "slamfw" / "model.npz"
        done = reuse.folder / "slamfw" / ".slamfw-complete"
        why = None
        if not (path.is_file() and done.is_file()):
            why = f"no finished slamfw model in {reuse.folder / 'slamfw'}"
        elif reuse.data_sha256 is None:
            why = f"no data.npz in {reuse.folder}"
        else:
            model = SlamfwModel.load(path)
            why = model_matches(model, case)
            if why is None:
                try:
                    arrays, test_ids = prepared_arrays(case, model, sets)
                except RuntimeError as err:
                    why = str(err)
                else:
                    sha = arrays_sha256(arrays)
                    if not reuse.compare(arrays, sha):
                        why = f"its data.npz is not this case's prepared spectra: {reuse.data_note}"
        if why is None:
            rec = reuse.record.get("slamfw") or {}
            stamp = json.loads(done.read_text())
            out.update(model_path=path, model=model, arrays=arrays, test_ids=test_ids, data_sha256=sha, reused=True,
                       train_s=rec.get("train_s"), train_process_s=rec.get("train_process_s"),
                       train_peak_mb=rec.get("train_peak_mb"),
                       finished=rec.get("finished") or stamp.get("finished"))
            if out["train_process_s"] is None and stamp.get("started") and stamp.get("finished"):
                from datetime import datetime
                t = datetime.fromisoformat(stamp["finished"]) - datetime.fromisoformat(stamp["started"])
                out["train_process_s"] = t.total_seconds()
            figures = ("training wall time, whole train process and peak memory" if rec else
                       "the whole train process's wall time (from its .slamfw-complete stamp; the folder has no "
                       f"{RECORD}, so the emulator's own training time and the training peak memory are not known)")
            reuse.used.append(f"slamfw model {path} (trained {stamp.get('started', '?')} to "
                              f"{stamp.get('finished', '?')}): {figures}; the model's size, CV MSE and (C, gamma) "
                              "are read from it")
        else:
            reuse.refuse("the slamfw model", why)
    if not out:
        out.update(train_slamfw(case, work), reused=False)
        out["model_path"] = work / "slamfw" / "model.npz"
        out["model"] = SlamfwModel.load(out["model_path"])
        out["arrays"], out["test_ids"] = prepared_arrays(case, out["model"], sets)
        out["data_sha256"] = arrays_sha256(out["arrays"])
        if reuse is not None:
            reuse.compare(out["arrays"], out["data_sha256"])
    data = work / "data.npz"
    np.savez(data, **out["arrays"])
    out["data"] = data
    if not out["reused"]:
        # the training figures now, not only at the end: a run stopped later (a long case, killed
        # or failed in inference or in the references) leaves a model --reuse-work can reuse
        write_record(work, case, out, None, None)
    return out


# ---------------------------------------------------------------- slamfw's side
def survey_table(work: Path, n: int, reuse: Reuse | None) -> Path:
    """The table file of the n observed test spectra (``harness_table``), reused from an earlier
    work folder when one holds it."""
    name = f"survey-seed{MOCK['seed']}-{n}.npz"
    for folder in [work, *([reuse.folder] if reuse else [])]:
        path = folder / "tables" / name
        if path.is_file() and write_mock_tables([(path, 0, n)], n, log=None)["reused"]:
            return path
    path = work / "tables" / name
    print(f"slamfw: writing the {n} observed test spectra to {path} ...", flush=True)
    r = write_mock_tables([(path, 0, n)], n)
    print(f"  drawn in {r['generate_s']:.0f} s, written in {r['write_s']:.1f} s "
          f"({path.stat().st_size / 2 ** 20:.0f} MB)",
          flush=True)
    return path


def column(table, name: str) -> np.ndarray:
    """A catalogue column as floats, NaN where it is masked (MILES stars without a label)."""
    c = table[name]
    values = np.array(c, dtype=float)
    mask = getattr(c, "mask", None)
    if mask is not None and mask is not np.ma.nomask:
        values[np.asarray(mask, bool)] = np.nan
    return values


def timed_predict(model_path: Path, data_args: list[str], cat: Path, names: list[str], n: int | None,
                  test_ids: np.ndarray | None) -> dict[str, Any]:
    """The whole ``slamfw predict MODEL *data_args -o cat`` process on 2 workers: ms per spectrum
    (over ``n`` spectra, or the catalogue's rows), peak memory of the process tree, and the labels
    against the truth (median bias) over all the catalogue's stars, and (``test_ids``) over the test
    stars among them."""
    from astropy.table import Table
    from astropy.units import UnitsWarning
    r = run_measured(slamfw_cmd("predict", str(model_path), *data_args, "-o", str(cat), "--force", "--workers", "2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)       # "dex" is no FITS unit
        t = Table.read(cat)
    n = n or len(t)
    out = {"wall_s": r["wall_s"], "ms_per_spectrum": 1e3 * r["wall_s"] / n, "peak_mb": r["peak_tree_mb"],
           "n_catalogue": len(t), "n_timed": n, "_ids": np.asarray(t["id"], dtype=str),
           "_labels": np.column_stack([column(t, x) for x in names])}
    if all(f"{x}_true" in t.colnames for x in names):
        pred = np.column_stack([column(t, x) for x in names])
        true = np.column_stack([column(t, f"{x}_true") for x in names])
        out["labels"] = label_stats(pred, true, names)
        if test_ids is not None:
            keep = np.isin(np.asarray(t["id"], dtype=str), test_ids)
            if not keep.any():
                raise RuntimeError(f"none of the {len(test_ids)} test stars' ids is in the catalogue {cat}")
            out["n_test"] = int(keep.sum())
            out["test_labels"] = label_stats(pred[keep], true[keep], names)
    return out


def catalogue_difference(a: dict[str, Any], b: dict[str, Any], names: list[str]) -> dict[str, dict[str, float]]:
    """How far the labels of the catalogue ``b`` are from ``a``'s (the same stars, matched by id),
    label by label (``names``, in their units): the median and the largest |difference| over the
    stars (inf where the two catalogues do not hold the same stars)."""
    order = {i: k for k, i in enumerate(b["_ids"].tolist())}
    rows = [order.get(i, -1) for i in a["_ids"].tolist()]
    if min(rows, default=0) < 0 or len(rows) != len(b["_ids"]):
        return {x: {"median": float("inf"), "max": float("inf")} for x in names}
    d = np.abs(b["_labels"][rows] - a["_labels"])
    return {x: {"median": float(np.nanmedian(d[:, j])), "max": float(np.nanmax(d[:, j]))} for j, x in enumerate(names)}


def catalogue_check(ids: np.ndarray, runs: dict[str, tuple[dict, dict]]) -> float:
    """The largest relative difference (|a - b| / max(|b|, 1), over stars and labels) between ``slamfw
    predict``'s catalogue labels of the stars ``ids`` (the first test stars) and the in-process
    labels on data.npz's prepared spectra of those stars: near 0 when data.npz holds the spectra
    ``slamfw predict`` prepares (what the reference codes get is what slamfw predicts on)."""
    worst = 0.0
    for cat, same in runs.values():
        rows = [int(np.flatnonzero(cat["_ids"] == i)[0]) if np.any(cat["_ids"] == i) else -1 for i in ids]
        if min(rows, default=0) < 0:
            return float("inf")
        a, b = cat["_labels"][rows], same["_labels"]
        d = np.abs(a - b) / np.maximum(np.abs(b), 1.0)
        worst = max(worst, float(np.nanmax(d)) if np.isfinite(d).any() else 0.0)
    return worst


def slamfw_trained(case: Case, work: Path, reuse: Reuse | None = None) -> dict[str, Any]:
    """slamfw's trained (or reused) model and its training figures: what the references' per-pixel
    comparison needs, before slamfw's inference is timed (``run_slamfw``)."""
    got = slamfw_model(case, work, reuse)
    model, model_path, data = got["model"], got["model_path"], got["data"]
    emu = model.emulator
    out: dict[str, Any] = {k: got.get(k) for k in ("train_s", "train_process_s", "train_peak_mb", "finished",
                                                   "reused", "data_sha256")}
    out["model_path"], out["data"] = model_path, str(data)
    out["model_mb"] = model_path.stat().st_size / 2 ** 20
    out["median_cv_mse"] = float(np.median(emu.cv_mse_))
    out["n_pixels"], out["n_train"] = int(emu.n_pixels_), int(len(model.train_labels))
    out["label_names"] = list(model.label_names)
    out["choices"] = {"C": emu.C_.tolist(), "gamma": emu.gamma_.tolist()}
    out["_emulator"], out["_got"] = emu, got
    return out


def run_slamfw(case: Case, work: Path, out: dict[str, Any], reuse: Reuse | None = None) -> dict[str, Any]:
    """slamfw's inference figures, added to ``out`` (``slamfw_trained``'s)."""
    got = out.pop("_got")
    model, model_path, data = got["model"], got["model_path"], got["data"]

    # the whole predict process, as a user runs it: from a survey file written beforehand (a), or
    # from the case's own test files (b: the MILES folder; c: the mock's test npz)
    names = list(model.label_names)
    if case.predict_args is None:
        n = case.n_predict
        table = survey_table(work, n, reuse)
        data_args = ["--reader", "table", "--reader-param", f"path={table}"]
        out["table"] = {"path": str(table), "mb": table.stat().st_size / 2 ** 20}
        what, test_ids = f"{n} spectra from {table.name}", None
    else:
        n, data_args, test_ids = None, list(case.predict_args), got["test_ids"]
        what = " ".join(data_args)
    print(f"slamfw: predict {what} (whole process) ...", flush=True)
    p3 = timed_predict(model_path, data_args, work / "predict.fits", names, n, test_ids)
    print(f"slamfw: predict {what} again, lm with n_starts = 1 (whole process) ...", flush=True)
    p1 = timed_predict(model_path, [*data_args, *SINGLE_START], work / "predict-lm1.fits", names, n, test_ids)
    print(f"slamfw: predict {what} again, n_starts = 1 and jacobian_precision = single (whole process) ...", flush=True)
    p1s = timed_predict(model_path, [*data_args, *SINGLE_PRECISION], work / "predict-lm1s.fits", names, n, test_ids)
    print(f"slamfw: predict {what} again, n_starts = 1 and steps = secant (whole process) ...", flush=True)
    p1sec = timed_predict(model_path, [*data_args, *SECANT_STEPS], work / "predict-lm1-secant.fits", names, n,
                          test_ids)
    if case.predict_args is not None:
        case.n_predict = p3["n_catalogue"]
    out["predict_ms_per_spectrum"], out["predict_peak_mb"] = p3["ms_per_spectrum"], p3["peak_mb"]
    out["n_catalogue"], out["labels"] = p3["n_catalogue"], p3.get("labels")
    out["n_test"], out["test_labels"] = p3.get("n_test"), p3.get("test_labels")
    out["predict1"] = p1
    out["predict1s"] = {k: v for k, v in p1s.items() if not k.startswith("_")}
    out["predict1s"]["label_diff"] = catalogue_difference(p1, p1s, names)
    out["predict1sec"] = {k: v for k, v in p1sec.items() if not k.startswith("_")}
    out["predict1sec"]["label_diff"] = catalogue_difference(p1, p1sec, names)
    print("slamfw: labels on the reference's spectra, floating-point rates ...", flush=True)
    out["same"] = same_spectra_labels(model, data, case.n_reference)
    out["same1"] = same_spectra_labels(model, data, case.n_reference, {"n_starts": 1})
    if test_ids is not None:
        out["check"] = catalogue_check(test_ids[:case.n_reference], {"3": (p3, out["same"]), "1": (p1, out["same1"])})
    arrays = got["arrays"]
    # in-process rates on up to 2000 spectra (100 one by one), fewer on a long grid (case c on all
    # 7214 pixels: 554 and 27), which the rates do not need
    n_pix = out["n_pixels"]
    n_fit = min(len(arrays["test_flux"]), 2000, max(200, int(4e6 // n_pix)))
    out["fit"] = flop_rates(model, model_path, data, n_fit)
    out["per_star_ms"] = per_star_time(model, arrays, min(len(arrays["test_flux"]), 100, max(20, int(2e5 // n_pix))))
    return out


def compare_choices(emu, pixels: np.ndarray, ref_C: np.ndarray, ref_gamma: np.ndarray) -> dict[str, float]:
    """Same (C, gamma) as the reference on each pixel of ``pixels``, or a near-tie: slamfw's CV MSE
    at its choice within 1 % of its CV MSE at the reference's choice. Where slam's grid pruning
    left the reference's choice unscored (NaN: its finished folds already exceeded slamfw's best),
    the pixel counts as no near-tie, which can only lower the fraction."""
    grid = emu.cv_mse_grid_[pixels]                            # (p, G, H)
    gi = np.array([emu.gamma.index(g) if g in emu.gamma else -1 for g in ref_gamma])
    ci = np.array([emu.C.index(c) if c in emu.C else -1 for c in ref_C])
    known = (gi >= 0) & (ci >= 0)
    same = known & (emu.C_[pixels] == ref_C) & (emu.gamma_[pixels] == ref_gamma)
    at_ref = np.where(known, grid[np.arange(len(pixels)), np.maximum(gi, 0), np.maximum(ci, 0)], np.nan)
    near = known & (at_ref <= 1.01 * emu.cv_mse_[pixels])   # the CV MSE at the reference's choice within 1 % of the best
    return {"pixels": float(len(pixels)), "same": float(same.mean()), "same_or_near_tie": float((same | near).mean())}


# ---------------------------------------------------------------- the report
def fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.1f}x"


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _variant_text(lead: str, run: dict[str, Any] | None) -> str:
    """The report's words on a timed ``predict`` with one start and another setting: ``lead``
    (what was run), its peak memory, and its labels against the n_starts = 1 catalogue's."""
    if not run:
        return ""
    diffs = ", ".join(f"{x} {d['median']:.2g} and {d['max']:.2g}" for x, d in run["label_diff"].items())
    return (f"{lead}, peak memory {run['peak_mb']:.0f} MB, its labels against the n_starts = 1 catalogue's (median "
            f"and largest |difference|, in the labels' units): {diffs}")


def single_text(single: dict[str, Any] | None) -> str:
    """The report's words on the third timed ``predict`` (n_starts = 1, jacobian in float32)."""
    return _variant_text("; then a third time with `--inferer-param jacobian_precision=single` as well (the "
                         "jacobian's matrix products in float32, the model and the cost in double: an extension, off "
                         "by default)", single)


def secant_text(secant: dict[str, Any] | None) -> str:
    """The report's words on the fourth timed ``predict`` (n_starts = 1, the secant steps)."""
    return _variant_text("; and a fourth with `--inferer-param steps=secant` instead (the batched solver's secant "
                         "steps: fewer evaluations, another path than the per-star solver's on spectra with several "
                         "minima; the default steps are MINPACK's)", secant)


def report(case: Case, mine: dict, ref: dict | None, cannons: dict | None, gemm: dict[str, float],
           reuse: Reuse | None = None) -> str:
    lines = [f"### Case {case.name}: {mine['n_train']} training stars x {mine['n_pixels']} pixels", ""]
    if case.text:
        lines += [case.text, ""]
    lines += [f"Grid C {case.grid['C']} x gamma {case.grid['gamma']}, epsilon {case.grid['epsilon']}, "
              f"{case.grid['n_folds']} unshuffled folds, 2 processes. Ratios are astroslam / slamfw: how many "
              "times faster (or smaller) slamfw is; the inverse of slamfw / reference.", ""]
    if case.slamfw_pixel_step > 1:
        k = case.slamfw_pixel_step
        lines += [f"**`--slamfw-pixel-step {k}`: slamfw trained and predicted on every {ordinal(k)} pixel of the "
                  f"case's grid only ({mine['n_pixels']} pixels), not on all pixels as the issue asks; its training "
                  "time, model size, memory and `predict` time are for that reduced grid.**", ""]
    a = reference_figures(ref)
    one, single, secant = mine["predict1"], mine.get("predict1s"), mine.get("predict1sec")
    subset = bool(a.get("train_pixels")) and a["train_pixels"] != mine["n_pixels"]
    on = f" (slamfw {mine['n_pixels']} pixels, astroslam {a.get('train_pixels')})" if subset else ""
    rows = [(f"training wall time (s){on}", mine["train_s"], a.get("train_s")),
            (f"median CV MSE (standardised){on}", mine["median_cv_mse"], a.get("median_cv_mse"))]
    if subset and ref.get("slamfw_median_cv_mse_on_pixels") is not None:
        rows.append((f"median CV MSE (standardised), both on astroslam's {a['train_pixels']} pixels",
                     ref["slamfw_median_cv_mse_on_pixels"], a.get("median_cv_mse")))
    rows += [
            (f"inference per spectrum (ms), slamfw `lm` 3 starts (its default){on}", mine["predict_ms_per_spectrum"],
             a.get("infer_ms")),
            (f"inference per spectrum (ms), slamfw `lm` n_starts = 1 (astroslam's single start){on}",
             one["ms_per_spectrum"], a.get("infer_ms")),
            *([(f"inference per spectrum (ms), slamfw `lm` n_starts = 1, jacobian_precision = single{on}",
                single["ms_per_spectrum"], a.get("infer_ms"))] if single else []),
            *([(f"inference per spectrum (ms), slamfw `lm` n_starts = 1, steps = secant{on}",
                secant["ms_per_spectrum"], a.get("infer_ms"))] if secant else []),
            (f"model size (MB){on}", mine["model_mb"], a.get("model_mb")),
            (f"peak memory, training (MB){on}", mine["train_peak_mb"], a.get("peak_mb"))]
    lines += ["| | slamfw | astroslam | astroslam / slamfw |", "|---|---|---|---|"]
    for name, x, y in rows:
        lines.append(f"| {name} | {fmt(x)} | {fmt(y)} | {fmt_ratio(y, x)} |")
    if a.get("train_pixels") and mine["train_s"]:
        per_a, per_m = a["train_s"] / a["train_pixels"], mine["train_s"] / mine["n_pixels"]
        lines.append(f"| training per pixel (s) | {per_m:.4g} | {per_a:.4g} | {fmt_ratio(per_a, per_m)} |")
    if subset and a.get("model_mb"):
        per_a, per_m = 2 ** 10 * a["model_mb"] / a["train_pixels"], 2 ** 10 * mine["model_mb"] / mine["n_pixels"]
        lines.append(f"| model size per pixel (kB) | {per_m:.4g} | {per_a:.4g} | {fmt_ratio(per_a, per_m)} |")
    starts = (("3 starts", mine["predict_ms_per_spectrum"]), ("n_starts = 1", one["ms_per_spectrum"]),
              *([("n_starts = 1 in single precision", single["ms_per_spectrum"])] if single else []),
              *([("n_starts = 1 with the secant steps", secant["ms_per_spectrum"])] if secant else []))
    if subset and a.get("infer_ms"):
        lines += per_pixel_inference_rows(starts, mine["n_pixels"], a["infer_ms"], a["train_pixels"],
                                          a.get("infer_ms_2"))
    two_cores = [] if not a.get("infer_ms") else [("astroslam halved for 2 cores", a["infer_ms"] / 2)]
    if a.get("infer_ms_2"):
        two_cores.append(("astroslam on 2 processes (its n_jobs = 2, measured)", a["infer_ms_2"]))
    for cores, ref_ms in two_cores:
        for what, x in starts:
            lines.append(f"| inference per spectrum, slamfw {what}, {cores} (ms){on} | {x:.4g} | {ref_ms:.4g} | "
                         f"{fmt_ratio(ref_ms, x)} |")
    if mine.get("train_process_s"):
        lines += ["", f"Training: the emulator's fit on the prepared spectra, on both sides (the whole `slamfw train` "
                  f"process, reading and normalising included, took {mine['train_process_s']:.4g} s)."]
    if subset:
        grid = "grid" if case.slamfw_pixel_step == 1 else "reduced grid"
        lines.append(f"astroslam trained every {ordinal(case.reference_pixels)} pixel ({a['train_pixels']} pixels), "
                     f"slamfw all {mine['n_pixels']} pixels of its {grid}: compare the training time and model size "
                     "per pixel, and the CV MSE on astroslam's pixels. astroslam also infers on its pixels only: compare "
                     "its inference time per spectrum and pixel; its labels below come from "
                     f"{mine['n_pixels'] / a['train_pixels']:.3g} times fewer pixels than slamfw's.")
    if case.predict_args is None:
        read = (f"on {case.n_predict} observed spectra read from a table file ({mine['table']['mb']:.0f} MB npz, "
                f"written before timing: native 1900-pixel grid, float32 flux and ivar): read, normalise, resample, "
                f"fit, write")
    else:
        read = (f"`{' '.join(['slamfw predict MODEL', *case.predict_args])}`, on {case.n_predict} spectra: "
                f"{case.predict_what}")
    theirs = ""
    if a:
        theirs = (f". astroslam's is its own least squares (one start, from its best training-set match) on "
                  f"{a['n_infer']} prepared spectra on one process, on the {a['train_pixels']} pixels it was trained on")
        if a.get("infer_ms_2"):
            theirs += ("; then the same again with its `predict_labels_multi(..., n_jobs=2)` (joblib over the spectra, "
                       "2 processes), timed apart, the start of its worker processes included")
    lines += ["", f"slamfw's inference is the whole `slamfw predict` process {read}, on 2 processes (local executor), "
              f"peak memory {mine['predict_peak_mb']:.0f} MB ({one['peak_mb']:.0f} MB with n_starts = 1); "
              f"run {['twice', 'three times', 'four times'][bool(single) + bool(secant)]}, "
              "with the model's `lm` (3 starts, spread over label space: the default) and with `--inferer-param "
              "n_starts=1` (the paper's and astroslam's single start from the best-matching training spectrum)"
              f"{single_text(single)}{secant_text(secant)}{theirs}."]
    if "check" in mine:
        lines.append(f"Check that data.npz (the references' input) holds the spectra `slamfw predict` prepares: on the "
                     f"first {case.n_reference} test stars, the catalogue's labels and slamfw's in-process labels on "
                     f"data.npz's prepared spectra differ by at most {mine['check']:.2g} (relative; both `lm` "
                     "settings).")
    if ref and "choices" in ref:
        c = ref["choices"]
        lines.append(f"Same (C, gamma) as astroslam on {100 * c['same']:.1f} % of its {int(c['pixels'])} pixels, the "
                     f"same or a near-tie on {100 * c['same_or_near_tie']:.1f} %.")
    fit1, pair = mine["fit"]["one"], mine["fit"]["pair"]
    g1, gall = gemm["one"], gemm["all"]
    lines += ["", f"Batched least squares alone ({int(fit1['spectra'])} prepared spectra, 3 starts each; FLOPs as "
              f"`batched_lm` counts them): on one process with one BLAS thread {fit1['ms_per_spectrum']:.2f} ms per "
              f"spectrum, {fit1['gflop_per_s']:.1f} GFLOP/s against the one-thread GEMM rate of {g1:.1f} GFLOP/s "
              f"({100 * fit1['gflop_per_s'] / g1:.0f} %); on two processes at once (halves, one thread each, wall "
              f"time of the pair; each process {pair['each_s'][0]:.2f} s and {pair['each_s'][1]:.2f} s) "
              f"{pair['ms_per_spectrum']:.2f} ms per spectrum, {pair['gflop_per_s']:.1f} GFLOP/s "
              f"against the {gemm['threads']}-thread GEMM rate of {gall:.1f} GFLOP/s "
              f"({100 * pair['gflop_per_s'] / gall:.0f} %). The one-by-one solver (scipy): "
              f"{mine['per_star_ms']:.2f} ms per spectrum."]
    if "zero_weight_fraction" in mine["fit"]:
        lines[-1] += (f" The FLOPs are those performed: {100 * mine['fit']['zero_weight_fraction']:.2f} % of the "
                      "(spectrum, pixel) weights are 0 and are computed like the others.")
    same, same1 = mine["same"], mine["same1"]
    ref_labels = a.get("labels") or {}
    if case.predict_args is None:
        all_text = f"slamfw's catalogue of the {mine['n_catalogue']} predicted stars"
    elif case.held_back:
        all_text = (f"the {mine['n_test']} held-back test stars among the {mine['n_catalogue']} rows of slamfw's "
                    "catalogue (the prepared test set; the other rows are training stars)")
    else:
        all_text = f"slamfw's catalogue of the {mine['n_catalogue']} test stars"
    lines += ["", f"Labels against the truth. Same spectra: the first {same['n']} prepared test spectra, the ones "
              "astroslam infers (slamfw: the model's batched `lm`, in process, with 3 starts and with n_starts = 1); "
              "bias = mean, scatter = standard deviation of inferred - true, as astroslam's summary computes them. "
              f"All test stars: {all_text}, from the `slamfw predict` runs above; bias = median.", "",
              "| label | slamfw bias | slamfw scatter | slamfw n_starts = 1 bias | slamfw n_starts = 1 scatter | "
              "astroslam bias | astroslam scatter |", "|---|---|---|---|---|---|---|"]
    for n, s in same["labels"].items():
        s1 = same1["labels"][n]
        rb, rs = (ref_labels.get("bias") or {}).get(n), (ref_labels.get("scatter") or {}).get(n)
        lines.append(f"| {n}, same {same['n']} spectra | {s['bias']:.4g} | {s['scatter']:.4g} | {s1['bias']:.4g} | "
                     f"{s1['scatter']:.4g} | {fmt(rb)} | {fmt(rs)} |")
    key, n_all = ("labels", mine["n_catalogue"]) if case.predict_args is None or not case.held_back else \
        ("test_labels", mine["n_test"])
    mine_all, one_all = mine.get(key) or {}, one.get(key) or {}
    for n, s in mine_all.items():
        s1 = one_all.get(n) or {}
        lines.append(f"| {n}, all {n_all} test stars (slamfw only) | {s['bias']:.4g} | {s['scatter']:.4g} | "
                     f"{fmt(s1.get('bias'))} | {fmt(s1.get('scatter'))} | - | - |")
    if cannons:
        c = mine.get("cannon", {})
        lines += ["", "| The Cannon (quadratic) | training (s) | inference per spectrum (ms) |", "|---|---|---|",
                  f"| slamfw `cannon` (batched `lm`, one process) | {c.get('train_s', float('nan')):.3g} | "
                  f"{c.get('infer_ms', float('nan')):.3g} |"]
        for k, name in (("casey", "Casey's (annieslasso 0.2.96)"), ("ho", "Ho's (thecannon 0.7.3)")):
            v = cannons.get(k)
            if isinstance(v, dict):
                lines.append(f"| {name} | {v['train_s']:.3g} | {1e3 * v['infer_per_spectrum_s']:.3g} |")
        if c.get("n_folds"):
            k = int(c["n_folds"])
            l1 = ", with its L1 penalty" if c.get("regularization") else ""
            lines += ["", f"Training does not do the same work on the three sides: slamfw's `cannon` fits each pixel "
                      f"{k + 1} times (its {k} cross-validation folds, for the CV MSE its model error uses, then all "
                      f"stars{l1}), each with a search of the intrinsic scatter; Casey's fits coefficients and scatter "
                      "once per pixel by optimisation, Ho's once over a grid of scatters; neither cross-validates."]
    if reuse is not None and (reuse.used or reuse.refused):
        lines += ["", f"Reused from {reuse.folder} (`--reuse-work`; its prepared spectra against "
                  f"this run's: {reuse.data_note}); "
                  "everything else was measured in this run:"]
        lines += [f"- {u}" for u in reuse.used] + [f"- {u}" for u in reuse.refused]
    for note in case.notes:
        lines.append(f"- {note}")
    shims = [(who, got.get("shims")) for who, got in (("astroslam", ref), ("the Cannons", cannons)) if got]
    if shims:
        from reference.env import PIN_OVERRIDES
        lines += ["", f"Reference environment (`benchmarks/reference/env.py`): {PIN_OVERRIDES}. Shims applied "
                  "from outside the unmodified codes (`benchmarks/reference/refshims.py`):"]
        lines += [f"- {who}: " + ("; ".join(s) if s else "none") for who, s in shims]
    return "\n".join(lines)


def per_pixel_inference_rows(starts: tuple[tuple[str, float], ...], n_pixels: int, ref_ms: float,
                             ref_pixels: int, ref_ms_2: float | None = None) -> list[str]:
    """Report rows comparing inference per spectrum and pixel (us) when astroslam infers on fewer
    pixels (``ref_pixels``, ``ref_ms`` per spectrum on one process) than slamfw (``n_pixels``;
    ``starts``: (name, slamfw's ms per spectrum)): each code evaluates one model per pixel. With
    astroslam on one process, with its time halved for 2 cores, and (``ref_ms_2``) as measured
    on 2 processes."""
    rows = []
    refs = [(ref_ms, "astroslam on one process"), (ref_ms / 2, "astroslam halved for 2 cores")]
    if ref_ms_2:
        refs.append((ref_ms_2, "astroslam on 2 processes (measured)"))
    for ref, cores in refs:
        for what, ms in starts:
            per_a, per_m = 1e3 * ref / ref_pixels, 1e3 * ms / n_pixels
            rows.append(f"| inference per spectrum and pixel (us), slamfw {what}, {cores} | {per_m:.4g} | "
                        f"{per_a:.4g} | {fmt_ratio(per_a, per_m)} |")
    return rows


def reference_figures(ref: dict | None) -> dict[str, Any]:
    """The figures of astroslam's summary (``benchmarks/reference/run_astroslam.py``) the report uses."""
    if not ref:
        return {}
    size = ref.get("model_size") or {}
    mem = ref.get("memory") or {}
    par = ref["infer"].get("parallel")
    return {"train_s": ref["train"]["wall_s"], "train_pixels": ref["data"]["n_pixels_trained"],
            "median_cv_mse": ref["cv"].get("median_cv_mse_at_chosen"),
            "infer_ms": 1e3 * ref["infer"]["per_spectrum_s"], "n_infer": ref["infer"]["n_spectra"],
            "infer_ms_2": 1e3 * par["per_spectrum_s"] if par and par.get("n_jobs") == 2 else None,
            "model_mb": (size.get("save_dump_bytes") or 0) / 2 ** 20 or None,
            "peak_mb": max(mem.get("maxrss_self_mib", 0), mem.get("maxrss_children_max_mib", 0)) or None,
            "labels": ref.get("labels"), "shims": ref.get("shims")}


def slamfw_cannon(data: Path) -> dict[str, float]:
    """slamfw's quadratic Cannon on the same prepared spectra: training, and batched inference on one process."""
    from slamfw import SerialExecutor, TrainedEmulator, registry, using_executor
    arrays = npz_arrays(data)
    names = [str(x) for x in arrays["label_names"]]
    emu = registry.create("emulator", "cannon", {"order": 2})
    with using_executor(SerialExecutor()):
        t0 = time.perf_counter()
        emu.fit(arrays["train_labels"], arrays["train_flux"], arrays["train_ivar"])
        train_s = time.perf_counter() - t0
        model = TrainedEmulator(emu, arrays["train_labels"], names)
        n = min(len(arrays["test_flux"]), 2000)
        t0 = time.perf_counter()
        registry.create("inferer", "lm", {}).infer(model, arrays["test_flux"][:n], arrays["test_ivar"][:n])
        infer_ms = 1e3 * (time.perf_counter() - t0) / n
    return {"train_s": train_s, "infer_ms": infer_ms, "n_folds": emu.n_folds,
            "regularization": emu.regularization}


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    return f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, Python {platform.python_version()}"


#: Reference settings that do not change what a reused run measured, only add to it (astroslam's
#: inference timed again on 2 processes): an earlier run without them is reused, without that figure.
REUSE_ANYWAY = {"infer_n_jobs_also"}


def reusable_reference(kind: str, reuse: Reuse | None, settings: dict, pixels: np.ndarray | None) -> dict | None:
    """An earlier run's summary of ``kind`` (astroslam, cannons) in ``reuse``'s folder, when it ran
    with the same settings on the same data (and pixels); None otherwise (the reason is noted)."""
    if reuse is None:
        return None
    path = reuse.folder / kind / f"{kind}.json"
    why = None
    if not path.is_file():
        why = f"no {path}"
    elif not reuse.data_same:
        why = f"the folder's data.npz is not this case's prepared spectra: {reuse.data_note}"
    else:
        summary = json.loads(path.read_text())
        got = summary.get("settings") or {}
        diff = [k for k, v in settings.items() if got.get(k) != v and k not in REUSE_ANYWAY]
        rec = (reuse.record.get("references") or {}).get(kind) or {}
        if diff:
            why = f"its settings differ ({', '.join(f'{k}: {got.get(k)!r} there, {settings[k]!r} here' for k in diff)})"
        elif rec and rec.get("data_sha256") != reuse.data_sha256:
            why = "it ran on other data than the folder's data.npz"
        elif not rec and path.stat().st_mtime < (reuse.folder / "data.npz").stat().st_mtime:
            why = "it is older than the folder's data.npz"
        elif pixels is not None:
            with np.load(summary["outputs"]["npz"]) as z:
                if not np.array_equal(z["pixels"], pixels):
                    why = "it was trained on other pixels"
    if why is not None:
        reuse.refuse(f"the {kind} results", why)
        return None
    figures = ("training time, CV MSE and choices, inference time, labels, model size and memory" if kind == "astroslam"
               else "Casey's and Ho's training and inference times")
    reuse.used.append(f"{kind}: {path} (written {mtime(path)}): {figures}")
    return summary


def run_astroslam(case: Case, mine: dict, work: Path, reuse: Reuse | None = None) -> dict:
    """astroslam on the same prepared spectra (its own environment), or its results in ``reuse``'s
    folder when they are this case's on the same data; compared per pixel with slamfw's choices."""
    from reference import run_reference
    settings = {**case.grid, "n_jobs": 2, "n_infer": case.n_reference, "infer_n_jobs_also": 2}
    pixels = np.arange(0, mine["n_pixels"], case.reference_pixels)
    arrays = npz_arrays(Path(mine["data"]))
    arrays["pixels"] = pixels
    np.savez(mine["data"], **arrays)
    ref = reusable_reference("astroslam", reuse, settings, pixels)
    if ref is None:
        print("astroslam: training and inference ...", flush=True)
        ref = run_reference("astroslam", Path(mine["data"]), settings, work / "astroslam")
        ref["_ran"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with np.load(ref["outputs"]["npz"]) as z:
        ref["choices"] = compare_choices(mine["_emulator"], z["pixels"], z["C"], z["gamma"])
        ref["slamfw_median_cv_mse_on_pixels"] = float(np.median(mine["_emulator"].cv_mse_[z["pixels"]]))
    for shim in ref.get("shims") or []:
        print(f"astroslam shim: {shim}")
    from reference.env import PIN_OVERRIDES
    print(f"reference environment: {PIN_OVERRIDES}")
    return ref


def run_cannons(case: Case, mine: dict, work: Path, reuse: Reuse | None = None) -> dict:
    """The Cannons on the same prepared spectra (their own environment; or their results in
    ``reuse``'s folder), and slamfw's ``cannon`` timed next to them."""
    from reference import run_reference
    c_settings = {"n_infer": min(200, case.n_predict)}
    cannons = reusable_reference("cannons", reuse, c_settings, None)
    if cannons is None:
        print("The Cannons: training and inference ...", flush=True)
        cannons = run_reference("cannons", Path(mine["data"]), c_settings, work / "cannons")
        cannons["_ran"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for shim in cannons.get("shims") or []:
        print(f"Cannons shim: {shim}")
    mine["cannon"] = slamfw_cannon(Path(mine["data"]))
    return cannons


def write_record(work: Path, case: Case, mine: dict, ref: dict | None, cannons: dict | None) -> None:
    """What ``--reuse-work`` needs to reuse this folder's results: the data's hash and the figures
    that a reused model cannot give again (its training time and memory)."""
    refs = {}
    for kind, summary in (("astroslam", ref), ("cannons", cannons)):
        if summary and "_ran" in summary:
            refs[kind] = {"data_sha256": mine["data_sha256"], "ran": summary["_ran"]}
    old = read_record(work)
    rec = {"case": case.name, "sets": case.sets, "grid": case.grid, "data_sha256": mine["data_sha256"],
           "slamfw": ({k: mine[k] for k in ("train_s", "train_process_s", "train_peak_mb", "finished")}
                      if not mine.get("reused") else old.get("slamfw")),
           "references": {**(old.get("references") or {}), **refs}}
    if mine.get("reused"):
        return      # the model lives in the reused folder; this folder holds no model to reuse
    (work / RECORD).write_text(json.dumps(rec, indent=2))


def run_scaling(args, case: Case, work: Path, reuse: Reuse | None) -> str:
    from harness_scaling import inference_series, projection, report as scaling_report, training_series
    if args.quick:
        sizes, m_sizes = [200, 2000], [100, 200]
    else:
        sizes = [n for n in (1000, 10_000, 100_000, 1_000_000) if n <= args.scaling_max]
        m_sizes = [m for m in (250, 500, 1000, 2000, 4000) if m <= args.scaling_train_max]
    got = slamfw_model(case, work, reuse)
    folder = work / "scaling"
    folder.mkdir(parents=True, exist_ok=True)
    extra = ["--inferer-param", f"n_starts={args.scaling_n_starts}"] if args.scaling_n_starts else []
    executors = tuple(dict.fromkeys(x.strip() for x in args.scaling_executors.split(",") if x.strip()))
    unknown = [x for x in executors if x not in ("local", "dask", "serial")]
    if unknown or not executors:
        raise SystemExit(f"--scaling-executors: {', '.join(unknown) or 'none given'}: use local, dask or serial")
    infer = inference_series(got["model_path"], sizes, folder, [reuse.folder / "scaling"] if reuse else [],
                             run_measured, slamfw_cmd, draw=args.scaling_draw, extra_args=extra,
                             executors=executors) if sizes else []
    train = training_series(case.sets, m_sizes, folder, run_measured, slamfw_cmd, DEMO, logged_seconds) \
        if m_sizes else []
    emu = got["model"].emulator
    model = (f"the model of case {case.name} ({len(got['model'].train_labels)} training stars, {emu.n_pixels_} pixels, "
             f"{len(got['model'].label_names)} labels)")
    grid = (f"case {case.name}'s settings (grid C {case.grid['C']} x gamma {case.grid['gamma']}, "
            f"{case.grid['n_folds']} unshuffled folds)")
    text = scaling_report(infer, train, [projection(infer, executor=x) for x in executors], args.quick, model, grid)
    if got.get("reused"):
        text += f"\n\nModel: reused from {got['model_path']} (`--reuse-work`; {reuse.data_note})."
    else:
        write_record(work, case, got, None, None)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["a", "b", "c"], default="a", help="a: the demo mock survey; b: MILES FGK; "
                   "c: the APOGEE-like 5-label mock survey (default a)")
    p.add_argument("--slamfw-pixel-step", type=int, default=1, metavar="K",
                   help="case c only: write the survey on every K-th pixel (K divides 20), so slamfw trains and "
                        "predicts on those pixels only (astroslam trains the same every-20th pixels as without it); "
                        "the report says so. Default 1: all pixels, as the issue asks (slamfw's training on all "
                        "7214 pixels x 2000 stars takes many hours on 2 cores)")
    p.add_argument("--quick", action="store_true", help="small subsets: check that the harness runs")
    p.add_argument("--slam-solver", choices=["libsvm", "smo"], default="libsvm",
                   help="slamfw's SVR solver: libsvm (scikit-learn's SVR, slam's default) or smo (LIBSVM's algorithm "
                        "compiled with numba, slamfw[fast]); the case's name says which")
    p.add_argument("--n-predict", type=int, default=None, help="case a: spectra for the timed `slamfw predict` "
                   "(default 20000; 2000 with --quick); cases b and c predict their own test files")
    p.add_argument("--n-reference", type=int, default=None, metavar="N",
                   help="test spectra that astroslam infers (on 1 and 2 processes) and that slamfw's labels are "
                        "compared on (default 20; 5 with --quick)")
    p.add_argument("--no-reference", action="store_true", help="slamfw's side only")
    p.add_argument("--work", default=None, help="keep the intermediate files here (a folder --reuse-work can reuse)")
    p.add_argument("--reuse-work", default=None, metavar="DIR",
                   help="reuse DIR's trained slamfw model and astroslam/Cannon results when they are this case's on "
                        "the same data (data.npz's arrays: the same SHA-256, or equal to --reuse-rtol); new files "
                        "go to --work")
    p.add_argument("--reuse-rtol", type=float, default=RTOL, metavar="R",
                   help="with --reuse-work: prepared spectra equal to this relative tolerance count as the same data "
                        "(default %(default)g; the report gives the largest difference)")
    p.add_argument("--retrain-if-needed", action="store_true",
                   help="with --reuse-work: train and run again what cannot be reused (default: stop and say why)")
    p.add_argument("--scaling", action="store_true", help="run the scaling series (instead of the comparison)")
    p.add_argument("--scaling-max", type=int, default=100_000, help="largest N of the inference series (10^3 .. "
                   "10^6; default 10^5)")
    p.add_argument("--scaling-draw", type=int, default=100_000, help="most mock spectra drawn for the inference "
                   "series (10 ms each); larger N repeat them under new ids (default %(default)d)")
    p.add_argument("--scaling-n-starts", type=int, default=None, help="lm's n_starts for the inference series "
                   "(default: the model's, 3)")
    p.add_argument("--scaling-executors", default="local", help="executors of the inference series, one after the "
                   "other on the same files (comma-separated: local, dask; dask: a LocalCluster of 2 workers, "
                   "which the DR5 projection then also uses; default %(default)s)")
    p.add_argument("--scaling-train-max", type=int, default=1000, help="largest M of the training series (250 .. "
                   "4000; default 1000)")
    p.add_argument("--write-results", action="store_true", help="record the figures in benchmarks/RESULTS.md")
    args = p.parse_args()
    if args.case != "a" and (args.n_predict is not None or args.scaling):
        p.error("--n-predict and --scaling are for case a only")
    if args.n_reference is not None and args.n_reference < 1:
        p.error("--n-reference must be at least 1")
    if args.slamfw_pixel_step != 1 and args.case != "c":
        p.error("--slamfw-pixel-step is for case c only")
    if args.case == "c" and (args.slamfw_pixel_step < 1 or 20 % args.slamfw_pixel_step):
        p.error("--slamfw-pixel-step must divide 20 (1, 2, 4, 5, 10 or 20)")
    reuse = Reuse.open(Path(args.reuse_work)) if args.reuse_work else None
    if reuse is not None:
        reuse.retrain, reuse.rtol = args.retrain_if_needed, args.reuse_rtol
    if reuse is not None and not reuse.folder.is_dir():
        p.error(f"--reuse-work: {reuse.folder} is not a folder")
    if args.work and reuse is not None and Path(args.work).resolve() == reuse.folder:
        p.error("--work must differ from --reuse-work (new files never go into the reused folder)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if args.case == "a":
            case = case_a(args.quick, args.n_predict)
        elif args.case == "b":
            case = case_b(args.quick)
        else:
            print(f"writing case (c)'s survey into {work / 'case-c'} ...", flush=True)
            case = case_c(work, args.quick, args.slamfw_pixel_step)
        case = case.with_solver(args.slam_solver)
        if args.n_reference is not None:
            case.n_reference = args.n_reference
        if args.scaling:
            print(f"machine: {machine()}", flush=True)
            text = run_scaling(args, case, work, reuse)
            print("\n" + text)
            if args.write_results:
                write_results("scaling" + (" (quick)" if args.quick else ""), text)
            return
        gemm = {"one": gemm_rate(1), "all": gemm_rate(None), "threads": blas_threads()}
        print(f"machine: {machine()}; GEMM (float64, numpy) {gemm['one']:.1f} GFLOP/s on one BLAS thread, "
              f"{gemm['all']:.1f} GFLOP/s on {gemm['threads']}", flush=True)
        # slamfw's training, then astroslam's, one after the other; then the inference timings.
        # The record is written after each long step, so a run stopped later keeps them for --reuse-work.
        mine = slamfw_trained(case, work, reuse)
        ref = cannons = None
        if not args.no_reference:
            ref = run_astroslam(case, mine, work, reuse)
            write_record(work, case, mine, ref, None)
        run_slamfw(case, work, mine, reuse)
        if not args.no_reference:
            cannons = run_cannons(case, mine, work, reuse)
        write_record(work, case, mine, ref, cannons)
        text = report(case, mine, ref, cannons, gemm, reuse)
    print("\n" + text)
    if args.write_results:
        write_results(f"case {case.name}", text)


def write_results(what: str, text: str, path: Path | None = None) -> None:
    """Put ``text`` into RESULTS.md between ``<!-- what -->`` markers (replacing an earlier one)."""
    path = path or HERE / "RESULTS.md"
    head = ("# Benchmark results\n\nWritten by `python benchmarks/harness.py --write-results` (latest run per case).\n")
    old = path.read_text() if path.exists() else head
    marker = f"<!-- {what} -->"
    body = f"{marker}\nMeasured {time.strftime('%Y-%m-%d')} on {machine()}.\n\n{text}\n{marker} end\n"
    if marker in old:
        start = old.index(marker)
        end = old.index(f"{marker} end\n") + len(f"{marker} end\n")
        old = old[:start] + body + old[end:]
    else:
        old = old.rstrip("\n") + "\n\n" + body
    path.write_text(old)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
