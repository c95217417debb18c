"""The ``slamfw`` command line.

    slamfw run CONFIG [--set dotted.key=value ...] [--executor NAME] [--workers N] [--force]
    slamfw train CONFIG [--set ...] [--executor NAME] [--workers N] [--force]
    slamfw predict MODEL [--data PATH] [--reader NAME] -o CATALOG [--executor NAME] [--workers N] [--force]
    slamfw compare CONFIG [--emulators slam,cannon,krr] [--set ...] [--executor NAME] [--workers N] [--force]
    slamfw plugins [NAME] [--kind KIND]
    slamfw check-plugin KIND NAME [--param key=value ...]     (check-emulator NAME: the emulator kit)
    slamfw demo [--out DIR] [--force]

User errors (bad config, missing data, bad spectra, damaged model files, unusable output paths,
an output folder in use) print one paragraph and exit with status 2; ``--verbose`` (before or
after the command) shows tracebacks and debug logging. ``--force`` lets a command overwrite
existing files at its output paths that slamfw did not write (see ``docs/outputs.md``).
"""
from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import sys
import traceback

from .._version import __version__
from ..components.kinds import KINDS
from ..errors import SlamfwError
from . import commands, plugin_commands
from .convert import add_convert


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


log = logging.getLogger("slamfw")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)


def _subparser(sub: argparse._SubParsersAction, name: str, func, help: str, config: bool = False,
               executor: bool = False, force: bool = False, **kw) -> argparse.ArgumentParser:
    sp = sub.add_parser(name, help=help, **kw)
    # also after the command; SUPPRESS keeps a --verbose given before it
    sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                    help="debug logging and tracebacks")
    if config:
        sp.add_argument("config")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set emulator.name=cannon (repeatable)")
    if executor:
        sp.add_argument("--executor", default=None, metavar="NAME",
                        help="where the work runs: local (processes, the default), serial, dask, ...")
        sp.add_argument("--workers", type=int, default=None, metavar="N", help="workers of the executor")
        sp.add_argument("--executor-param", action="append", default=[], metavar="KEY=VALUE",
                        help="another executor parameter, e.g. address=tcp://host:8786 for dask (repeatable)")
    if force:
        sp.add_argument("--force", action="store_true",
                        help="overwrite existing files at the output paths even if slamfw did not write them "
                             "(never takes over a folder another run is writing into)")
    sp.set_defaults(func=func)
    return sp


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slamfw", description="Data-driven stellar labels (SLAM and friends).")
    p.add_argument("--version", action="version", version=f"slamfw {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True)
    _subparser(sub, "run", commands.cmd_run, "train (or load, or reuse the finished) model, infer the test set, "
               "analyse", config=True, executor=True, force=True)
    _subparser(sub, "train", commands.cmd_train, "train and save a model", config=True, executor=True, force=True)
    sp = _subparser(sub, "predict", commands.cmd_predict, "label a survey with a saved model (streamed)",
                    executor=True, force=True)
    sp.add_argument("model")
    sp.add_argument("--data", default=None, help="input path for the reader (file or directory); "
                    "not needed by readers that read no files")
    sp.add_argument("--reader", default=None, help="reader name (default: the model's)")
    sp.add_argument("--reader-param", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--inferer-param", action="append", default=[], metavar="KEY=VALUE",
                    help="change a parameter of the model's inferer for this run (lm: device=cuda, n_starts=1, ...)")
    sp.add_argument("--chunk-size", type=_positive_int, default=500)
    sp.add_argument("-o", "--output", required=True, help="catalogue file (.fits or .ecsv)")
    sp = _subparser(sub, "compare", commands.cmd_compare,
                    "train and test several emulators on the same data; one report", config=True, executor=True,
                    force=True)
    sp.add_argument("--emulators", default=None, metavar="A,B,...",
                    help="comma-separated emulator names (default: compare.emulators in the config)")
    sp = _subparser(sub, "plugins", plugin_commands.cmd_plugins,
                    "list registered components by kind, or show one component's parameters")
    sp.add_argument("name", nargs="?", help="a component name: show its parameters")
    sp.add_argument("--kind", choices=sorted(KINDS), help="the kind, when the name is used by several")
    sp = _subparser(sub, "check-plugin", plugin_commands.cmd_check_plugin,
                    "run the conformance kit of a kind on a registered component")
    sp.add_argument("kind", choices=sorted(KINDS))
    sp.add_argument("name", help="registered name (see `slamfw plugins`)")
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="component parameter for the checks (repeatable)")
    sp = _subparser(sub, "check-emulator", plugin_commands.cmd_check_emulator,
                    "the emulator conformance kit (same as check-plugin emulator NAME)")
    sp.add_argument("name", help="registered emulator name (see `slamfw plugins`)")
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="emulator parameter for the checks (repeatable)")
    sp = _subparser(sub, "demo", commands.cmd_demo,
                    "mock survey end to end: train SLAM, infer, print the scatter table", force=True)
    sp.add_argument("--out", default="slamfw-demo", help="output directory (default: slamfw-demo)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    add_convert(sub, _subparser)
    return p


#: The errors of a full file system (no space, or the quota): the user's to fix, not a bug.
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
#: What the executors' libraries raise when a worker process is killed from outside (the
#: out-of-memory killer) or a dask worker is lost with the task's data: not a bug of slamfw.
_WORKER_LOST = frozenset({"TerminatedWorkerError", "BrokenProcessPool", "FutureCancelledError", "KilledWorker"})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except SlamfwError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"slamfw: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (`slamfw plugins | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("slamfw: interrupted (finished training blocks, a finished model and finished inference chunks are kept "
              "and reused on rerun)",
              file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, OSError) and err.errno in _FULL:      # the user's to fix, not a bug
            where = f" writing {err.filename!r}" if err.filename else ""
            print(f"slamfw: error: {err.strerror or 'no space left'}{where} ({errno.errorcode.get(err.errno)}): "
                  "free some space or write elsewhere; finished pieces are kept and reused on rerun", file=sys.stderr)
            return 2
        if type(err).__name__ in _WORKER_LOST:                  # killed from outside: not a bug of slamfw
            if args.verbose:
                traceback.print_exc()
            print(f"slamfw: error: a worker process stopped or was lost ({type(err).__name__}: {str(err)[:300]}). "
                  "The system's out-of-memory killer is the usual cause: try fewer workers (--workers) or a smaller "
                  "--chunk-size. Finished pieces are kept and reused on rerun.", file=sys.stderr)
            return 1
        if args.verbose:
            traceback.print_exc()
        print(f"slamfw: internal error: {type(err).__name__}: {err}\n"
              f"  (this is a bug; rerun with --verbose for the traceback)", file=sys.stderr)
        return 1


def run(argv: list[str] | None = None) -> None:
    """The ``slamfw`` console script and ``python -m slamfw.cli``: :func:`main`, then, after a
    command that succeeded, the process exits without waiting for what no longer matters: the
    local executor's idle workers are stopped at once, not asked to exit (each would tear down
    its interpreter first, and this process would wait for them), and the objects left are
    frozen (``gc.freeze``), so that the interpreter's exit does not go through them for cyclic
    garbage: about 0.15 s for the modules a command imports (astropy, scipy, pydantic, ...);
    objects in reference cycles are then not finalised, as Python does not promise for objects
    alive at exit. atexit handlers, ``weakref.finalize`` callbacks and the flushing of the
    standard streams still run. A command that failed stops its idle workers too (``slamfw
    predict`` starts them before it reads the model, which may then be refused), and otherwise
    exits as Python does."""
    from ..execution.local import stop_idle_workers
    code = main(argv)
    stop_idle_workers()
    if code == 0:
        gc.freeze()
    sys.exit(code)
