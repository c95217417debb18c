"""The whole ``slamfw train`` process at M training stars: wall time, the log's training time, and
peak memory of the process tree as the sum of RSS and the sum of PSS (prints, asserts nothing).

    python benchmarks/bench_train_memory.py --stars 6000 8000        # about 3 and 5 minutes on 2 cores

The demo's mock survey (the shipped config, changed with ``--set``) on 5 pixels
(``preprocess.wave_step=450``, one pixel per task), case (a)'s grid (C 1, 10, 100; gamma 0.01,
0.1, 1), 5 unshuffled folds, the numba solver, calibration off, 2 local workers. Memory is sampled
every 0.25 s with psutil. PSS (proportional set size) counts a page that n processes share as 1/n
in each, so its sum shows memory the workers share (slam's kernels, mapped from the local
executor's file); the RSS sum counts such a page in every process. The figures in
``benchmarks/RESULTS.md`` ("Training memory: the workers share the kernels") came from this
procedure. Needs psutil (``pip install 'slamfw[test]'``) and, for the numba solver, ``slamfw[fast]``.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo" / "experiment.toml"
SETS = ["preprocess.wave_step=450", "calibration.enabled=false", "analyzers=[]", "emulator.name=slam",
        "emulator.slam.C=[1.0, 10.0, 100.0]", "emulator.slam.gamma=[0.01, 0.1, 1.0]",
        "emulator.slam.shuffle_folds=false", "emulator.slam.solver=smo", "emulator.slam.pixels_per_task=1"]


def measured(cmd: list[str], every: float = 0.25) -> dict[str, float | str]:
    """Run ``cmd``; its wall time, its stderr, and the peak sums of RSS and PSS over its process tree (MB)."""
    import psutil
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stderr=err, stdout=subprocess.DEVNULL)
        top = psutil.Process(proc.pid)
        rss = pss = 0.0
        while proc.poll() is None:
            r = p = 0
            try:
                tree = [top, *top.children(recursive=True)]
            except psutil.Error:
                break
            for q in tree:
                try:
                    info = q.memory_full_info()
                except psutil.Error:             # gone meanwhile
                    continue
                r, p = r + info.rss, p + info.pss
            rss, pss = max(rss, r / 2 ** 20), max(pss, p / 2 ** 20)
            time.sleep(every)
        err.seek(0)
        log = err.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    return {"wall_s": time.perf_counter() - t0, "peak_rss_mb": rss, "peak_pss_mb": pss, "log": log}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stars", type=int, nargs="+", default=[6000, 8000], help="training set sizes M")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    print(f"{'M':>6} {'wall (s)':>9} {'training (s)':>13} {'peak RSS sum (MB)':>18} {'peak PSS sum (MB)':>18}",
          flush=True)
    for m in args.stars:
        with tempfile.TemporaryDirectory() as out:
            sets = [*SETS, f"data.train.mock.n_stars={m}", f"output.dir={out}"]
            cmd = [sys.executable, "-m", "slamfw.cli", "train", str(DEMO), *[a for s in sets for a in ("--set", s)],
                   "--force", "--executor", "local", "--workers", str(args.workers)]
            r = measured(cmd)
        took = re.search(r"training took ([0-9.]+) s", str(r["log"]))
        print(f"{m:>6} {r['wall_s']:>9.1f} {float(took.group(1)) if took else float('nan'):>13.1f} "
              f"{r['peak_rss_mb']:>18.0f} {r['peak_pss_mb']:>18.0f}", flush=True)


if __name__ == "__main__":
    main()
