"""The commands that run experiments: run, train, predict, compare, demo."""
from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import apply_override, load_config, parse_value, validate_config
from ..errors import ConfigError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]


def key_values(items: list[str], option: str) -> dict[str, Any]:
    """``["k=v", ...]`` from the command line as a dict (values parsed like ``--set``)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{option} {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v)
    return out


def _print_reports(res) -> None:
    for rep in res.reports:
        print()
        print(rep.to_markdown())


def cmd_run(args: argparse.Namespace) -> int:
    from ..workflows.run import run_experiment
    res = run_experiment(load_config(args.config, args.set))
    print(f"\nresults in {res.output_dir}/: " + ", ".join(
        p.name for p in [*([res.model_path] if res.model_path else []), *res.catalog_paths]) + ", report.md, config.yaml")
    _print_reports(res)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..workflows.run import run_train
    tr, path = run_train(load_config(args.config, args.set))
    print(f"model written to {path} ({tr.train.n_stars} training stars, {tr.train_time_s:.1f} s)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..data.catalog import make_catalog, write_catalog
    from ..model import SlamfwModel
    from ..workflows.infer import predict
    overrides = key_values(args.reader_param, "--reader-param")
    model = SlamfwModel.load(args.model)
    out = Path(args.output)
    data, result = predict(model, args.data, args.reader, overrides, chunk_size=args.chunk_size,
                           checkpoint_dir=out.parent / ".checkpoints")
    table = make_catalog(data.ids, result, model.label_units, snr=data.meta_column("snr"), true_labels=data.labels)
    write_catalog(table, out)
    print(f"catalogue of {len(table)} stars ({int(result.converged.sum())} converged) written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..reporting.compare_report import label_table, summary_table
    from ..workflows.compare import compare_emulators
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
    return resources.files("slamfw").joinpath("resources/demo.toml").read_text()


def cmd_demo(args: argparse.Namespace) -> int:
    from ..workflows.run import run_experiment
    raw = tomllib.loads(demo_config_text())
    raw["output"]["dir"] = args.out
    for item in args.set:
        apply_override(raw, item)
    cfg = validate_config(raw)
    print("\n".join(line.lstrip("# ") for line in demo_config_text().splitlines()[:2]))
    res = run_experiment(cfg)
    _print_reports(res)
    print(f"\ncatalogue, model and report in {res.output_dir}/")
    return 0
