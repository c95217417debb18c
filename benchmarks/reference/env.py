"""Create (or reuse) the virtualenv that runs the ORIGINAL reference codes, unmodified, from PyPI.

    python benchmarks/reference/env.py                  # default venv: benchmarks/reference/.refenv
    python benchmarks/reference/env.py --venv /tmp/ref  # elsewhere
    python benchmarks/reference/env.py --rebuild        # delete and build again

Installed: astroslam 1.2022.1228.1 (import ``slam``), annieslasso 0.2.96 (``thecannon``, Casey's
Cannon) and thecannon 0.7.3 (``TheCannon``, Ho's Cannon), all three with ``--no-deps``, and their
real run-time dependencies at pinned versions that work with each other (astroslam pins
scikit-learn 1.2.0 and joblib 1.2.0, which do not import on numpy 2: the pins are overridden; the
numerical stack is the one of the slamfw dev venv so that timings compare like with like). Then the
shims of ``refshims.py`` are copied into the venv's site-packages (see that file). A second call
finds the stamp file written after a complete install and only refreshes the shims (about a second
plus the version report). ``ensure_env(venv=None) -> Path`` returns the venv's python for other
scripts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv as _venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".refenv"
STAMP = "slamfw-refenv.json"
SHIM_SOURCE = HERE / "refshims.py"
SHIM_MODULE = "_slamfw_refshims"

#: the reference codes, exact versions, installed with --no-deps
REFERENCE = {"astroslam": "1.2022.1228.1", "annieslasso": "0.2.96", "thecannon": "0.7.3"}
#: what they import at run time (astroslam's slam.slam3 imports matplotlib, astropy, joblib,
#: scikit-learn, pandas, emcee and ipyparallel at module level; annieslasso needs six; Ho's Cannon
#: matplotlib and astropy). astroslam's laspec and lmfit are only used by modules that the
#: training / inference path never imports, so they are left out.
DEPENDENCIES = [
    "numpy==2.4.6", "scipy==1.17.1", "scikit-learn==1.9.1", "joblib==1.6.0", "threadpoolctl==3.8.0",
    "matplotlib==3.11.2", "astropy==8.0.2", "pandas==3.1.1", "emcee==3.1.6", "ipyparallel==9.2.0",
    "six==1.17.0",
]
#: what the environment changes in the reference codes' own requirements, for the reports
PIN_OVERRIDES = ("astroslam's pins scikit-learn==1.2.0 and joblib==1.2.0 (they do not import on numpy 2) "
                 "overridden: scikit-learn==1.9.1, joblib==1.6.0, the numerical stack of slamfw's dev venv")
#: (distribution, import name) pairs whose versions are reported
REPORTED = [("numpy", "numpy"), ("scipy", "scipy"), ("scikit-learn", "sklearn"), ("joblib", "joblib"),
            ("astropy", "astropy"), ("pandas", "pandas"), ("astroslam", "slam"),
            ("annieslasso", "thecannon"), ("thecannon", "TheCannon")]

_REPORT = "REPORTED = " + repr(REPORTED) + r"""
import importlib, importlib.metadata as md, json, os, platform, sys, warnings
warnings.simplefilter("ignore")
os.environ.setdefault("MPLBACKEND", "Agg")
out = {"python": platform.python_version(), "executable": sys.executable, "versions": {}, "errors": {}}
for dist, mod in REPORTED:
    try:
        out["versions"][dist] = md.version(dist)
        importlib.import_module(mod)
    except Exception as exc:
        out["errors"][dist] = f"{type(exc).__name__}: {exc}"
import _slamfw_refshims
out["shims"] = _slamfw_refshims.applied()
print(json.dumps(out))
"""


class RefEnvError(RuntimeError):
    """The reference environment could not be built or does not work."""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _spec_hash() -> str:
    blob = json.dumps([sys.version_info[:2], REFERENCE, DEPENDENCIES], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RefEnvError(
            f"{what} failed (exit {proc.returncode}).\n  command: {' '.join(cmd)}\n{tail}\n"
            "Check that PyPI is reachable (pip config / proxy) and that the pinned versions exist.")
    return proc.stdout


def _site_packages(py: Path) -> Path:
    out = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               "locating the venv's site-packages")
    return Path(out.strip())


def install_shims(py: Path) -> Path:
    """Copy refshims.py into the venv's site-packages (+ the .pth that imports it at start-up)."""
    site = _site_packages(py)
    target = site / f"{SHIM_MODULE}.py"
    src = SHIM_SOURCE.read_text()
    if not target.exists() or target.read_text() != src:
        target.write_text(src)
    pth = site / f"{SHIM_MODULE}.pth"
    line = f"import {SHIM_MODULE}\n"
    if not pth.exists() or pth.read_text() != line:
        pth.write_text(line)
    return target


def _build(venv: Path, log=print) -> None:
    py = _python(venv)
    if not py.exists():
        log(f"[refenv] creating virtualenv {venv} (python {sys.version.split()[0]})")
        try:
            _venv.EnvBuilder(with_pip=True, clear=True).create(venv)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise RefEnvError(f"creating the virtualenv {venv} failed ({exc}); is the `venv` module "
                              "with ensurepip available (Debian: apt-get install python3-venv)?") from exc
    pip = [str(py), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    log("[refenv] installing dependencies: " + " ".join(DEPENDENCIES))
    _run(pip + DEPENDENCIES, "pip install of the dependencies")
    refs = [f"{name}=={ver}" for name, ver in REFERENCE.items()]
    log("[refenv] installing the reference codes (--no-deps): " + " ".join(refs))
    _run(pip + ["--no-deps"] + refs, "pip install of the reference codes")


def report(py: Path) -> dict:
    """Import everything in the venv and return python/package versions and the shims applied."""
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([str(py), "-c", _REPORT], check=False, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RefEnvError(f"the reference venv does not work:\n{proc.stderr[-3000:]}")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["errors"]:
        raise RefEnvError("importing in the reference venv failed: "
                          + json.dumps(info["errors"], indent=1))
    return info


def ensure_env(venv: Path | str | None = None, rebuild: bool = False, verbose: bool = False) -> Path:
    """Create the reference venv if it is missing or incomplete; return the path of its python.

    Idempotent: a complete venv (stamp file matching the pinned specification) is reused and only
    its shims are refreshed.
    """
    venv = Path(venv) if venv is not None else DEFAULT_VENV
    venv = venv.resolve()
    log = print if verbose else (lambda *a, **k: None)
    stamp = venv / STAMP
    if rebuild and venv.exists():
        shutil.rmtree(venv)
    want = _spec_hash()
    ok = stamp.exists() and _python(venv).exists()
    if ok:
        try:
            ok = json.loads(stamp.read_text()).get("spec") == want
        except (OSError, ValueError):
            ok = False
    if not ok:
        if stamp.exists():
            stamp.unlink()
        _build(venv, log)
    py = _python(venv)
    install_shims(py)
    if not ok:
        info = report(py)  # raises if anything does not import
        stamp.write_text(json.dumps({"spec": want, "reference": REFERENCE,
                                     "dependencies": DEPENDENCIES, "report": info}, indent=1))
        log("[refenv] complete")
    else:
        log(f"[refenv] reusing {venv}")
    return py


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--venv", default=None, help=f"venv path (default {DEFAULT_VENV})")
    p.add_argument("--rebuild", action="store_true", help="delete the venv and build it again")
    args = p.parse_args()
    try:
        py = ensure_env(args.venv, rebuild=args.rebuild, verbose=True)
        info = report(py)
    except RefEnvError as exc:
        sys.exit(f"[refenv] ERROR: {exc}")
    print(f"[refenv] python     {info['python']}  ({info['executable']})")
    for dist, ver in info["versions"].items():
        print(f"[refenv] {dist:12s} {ver}")
    print("[refenv] shims applied on import of everything:")
    for s in info["shims"]:
        print(f"[refenv]   - {s}")


if __name__ == "__main__":
    main()
