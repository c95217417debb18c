"""The ``slamfw`` command line.

    slamfw run CONFIG [--set dotted.key=value ...]
    slamfw train CONFIG [--set ...]
    slamfw predict MODEL --data PATH [--reader NAME] -o CATALOG
    slamfw plugins
    slamfw check-emulator NAME [--param key=value ...]
    slamfw compare CONFIG [--emulators slam,cannon,krr] [--set ...]
    slamfw demo [--out DIR]

User errors (bad config, missing data, bad spectra, damaged model files) print one paragraph
and exit with status 2; ``--verbose`` shows tracebacks and debug logging.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from importlib import resources
from pathlib import Path

from . import __version__
from .errors import SlamfwError

log = logging.getLogger("slamfw")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)


def _print_reports(res) -> None:
    for rep in res.reports:
        print()
        print(rep.to_markdown())


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import run_experiment
    cfg = load_config(args.config, args.set)
    res = run_experiment(cfg)
    print(f"\nresults in {res.output_dir}/: " + ", ".join(
        p.name for p in [*([res.model_path] if res.model_path else []), *res.catalog_paths]) + ", report.md, config.yaml")
    _print_reports(res)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .pipeline import run_train
    cfg = load_config(args.config, args.set)
    tr, path = run_train(cfg)
    print(f"model written to {path} ({tr.train.n_stars} training stars, {tr.train_time_s:.1f} s)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .catalog import make_catalog, write_catalog
    from .model import SlamfwModel
    from .pipeline import predict
    overrides = _key_values(args.reader_param, "--reader-param")
    model = SlamfwModel.load(args.model)
    out = Path(args.output)
    data, result = predict(model, args.data, args.reader, overrides, chunk_size=args.chunk_size,
                           checkpoint_dir=out.parent / ".checkpoints")
    table = make_catalog(data.ids, result, model.label_units, snr=data.meta_column("snr"), true_labels=data.labels)
    write_catalog(table, out)
    print(f"catalogue of {len(table)} stars ({int(result.converged.sum())} converged) written to {out}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from . import plugins
    comps = plugins.all_components()
    for kind, reg in comps.items():
        print(f"{kind}s:")
        for name, r in sorted(reg.items()):
            doc = (r.cls.__doc__ or "").strip().splitlines()[0] if r.cls.__doc__ else ""
            print(f"  {name:<14} {r.distribution:<24} {r.cls.__module__}.{r.cls.__name__}  {doc}")
    broken = plugins.broken_plugins()
    if broken:
        print("plugins that failed to load:")
        for b in broken:
            print(f"  {b.name} ({b.distribution}): {b.error}")
    return 0


def _key_values(items: list[str], option: str) -> dict:
    from .config import parse_value
    from .errors import ConfigError
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{option} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def cmd_check_emulator(args: argparse.Namespace) -> int:
    from . import plugins
    from .testing import check_emulator
    cls = plugins.get_component("emulator", args.name, where="check-emulator NAME")
    params = cls.validate_params(_key_values(args.param, "--param"), prefix=args.name).model_dump()
    print(f"conformance checks for emulator {args.name!r} ({cls.__module__}.{cls.__name__}):")
    results = check_emulator(cls, params, raise_on_fail=False)
    for r in results:
        print(f"  {'PASS' if r.passed else 'FAIL'}  {r.name}" + (f"  ({r.message})" if r.message else ""))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_emulators, label_table, summary_table
    from .config import load_config
    cfg = load_config(args.config, args.set)
    names = args.emulators.split(",") if args.emulators else None
    res = compare_emulators(cfg, names)
    files = ["compare.md", "compare.json", "compare_cv.ecsv", *(p.name for p in res.figures)]
    print(f"\ncomparison in {res.output_dir}/: {', '.join(files)}; each emulator's run in <emulator>/\n")
    print(summary_table(res))
    labels = label_table(res)
    if labels:
        print()
        print(labels)
    return 0


def demo_config_text() -> str:
    """The demo experiment (the same file as examples/demo/experiment.toml)."""
    return resources.files("slamfw").joinpath("data/demo.toml").read_text()


def cmd_demo(args: argparse.Namespace) -> int:
    from .config import apply_override, validate_config
    from .pipeline import run_experiment
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover
        import tomli as tomllib  # type: ignore[no-redef]
    raw = tomllib.loads(demo_config_text())
    raw["output"]["dir"] = args.out
    for item in args.set:
        apply_override(raw, item)
    cfg = validate_config(raw)
    print(f"slamfw demo: mock survey, training SLAM on {raw['data']['train']['n_stars']} stars, "
          f"testing on {raw['data']['test']['n_stars']} at S/N {raw['data']['test']['snr']}")
    res = run_experiment(cfg)
    _print_reports(res)
    print(f"\ncatalogue, model and report in {res.output_dir}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slamfw", description="Data-driven stellar labels (SLAM and friends).")
    p.add_argument("--version", action="version", version=f"slamfw {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def with_set(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set emulator.name=slam (repeatable)")

    sp = sub.add_parser("run", help="train (or load) a model, infer the test set, analyse")
    sp.add_argument("config")
    with_set(sp)
    sp.set_defaults(func=cmd_run)
    sp = sub.add_parser("train", help="train and save a model")
    sp.add_argument("config")
    with_set(sp)
    sp.set_defaults(func=cmd_train)
    sp = sub.add_parser("predict", help="label a survey with a saved model")
    sp.add_argument("model")
    sp.add_argument("--data", required=True, help="path for the reader (file or directory)")
    sp.add_argument("--reader", default=None, help="reader name (default: the model's)")
    sp.add_argument("--reader-param", action="append", default=[], metavar="KEY=VALUE")
    sp.add_argument("--chunk-size", type=int, default=500)
    sp.add_argument("-o", "--output", required=True, help="catalogue file (.fits or .ecsv)")
    sp.set_defaults(func=cmd_predict)
    sp = sub.add_parser("plugins", help="list registered components by kind")
    sp.set_defaults(func=cmd_plugins)
    sp = sub.add_parser("compare", help="train and test several emulators on the same data; one report")
    sp.add_argument("config")
    sp.add_argument("--emulators", default=None, metavar="A,B,...",
                    help="comma-separated emulator names (default: compare.emulators in the config)")
    with_set(sp)
    sp.set_defaults(func=cmd_compare)
    sp = sub.add_parser("check-emulator", help="run the emulator conformance kit on a registered emulator")
    sp.add_argument("name", help="registered emulator name (see `slamfw plugins`)")
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="emulator parameter for the checks (repeatable)")
    sp.set_defaults(func=cmd_check_emulator)
    sp = sub.add_parser("demo", help="mock survey end to end: train SLAM, infer, print the scatter table")
    sp.add_argument("--out", default="slamfw-demo", help="output directory (default: slamfw-demo)")
    with_set(sp)
    sp.set_defaults(func=cmd_demo)
    return p


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
    except KeyboardInterrupt:
        print("slamfw: interrupted (finished inference chunks are kept and reused on rerun)", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not a user error
        if args.verbose:
            traceback.print_exc()
        print(f"slamfw: internal error: {type(err).__name__}: {err}\n"
              f"  (this is a bug; rerun with --verbose for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
