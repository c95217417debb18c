"""The commands that run experiments: run, train, predict, compare, demo."""
from __future__ import annotations

import argparse
import json
from importlib import resources
from typing import Any

from .. import registry
from ..components.executor import Executor
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
    res = run_experiment(load_config(args.config, executor_overrides(args)), force=args.force)
    if res.model_reused:
        print(f"\nreused the finished model {res.model_path} (same training set and settings): not retrained")
    print(f"\nresults in {res.output_dir}/: " + ", ".join(
        p.name for p in [*([res.model_path] if res.model_path else []), *res.catalog_paths]) + ", report.md, config.yaml")
    _print_reports(res)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..workflows.run import run_train
    tr, path = run_train(load_config(args.config, executor_overrides(args)), force=args.force)
    print(f"model written to {path} ({tr.train.n_stars} training stars, {tr.train_time_s:.1f} s)")
    return 0


def _executor_params(args: argparse.Namespace) -> dict[str, Any]:
    params = key_values(args.executor_param, "--executor-param")
    if args.workers is not None:
        params["workers"] = args.workers
    return params


def _default_executor_name() -> str:
    """The registered name of the default executor (local worker processes)."""
    from ..execution.local import LocalExecutor
    name = registry.registered_name(LocalExecutor, "executor")
    if name is None:
        raise ConfigError("--executor: no executor named, and the default one is not registered (disabled?)")
    return name


def _check_workers(name: str, params: dict[str, Any]) -> None:
    cls = registry.get_component("executor", name, where="--executor")
    if "workers" in params and "workers" not in cls.Params.model_fields:
        raise ConfigError(f"--workers: the executor {name!r} has no workers (it runs in this process)")


def executor_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` assignments for ``--executor NAME``, ``--workers N`` and ``--executor-param`` on a config."""
    sets = list(args.set)
    name = args.executor
    if name:
        sets.append(f"executor.name={name}")
    params = _executor_params(args)
    if params:
        if not name:  # the config's executor, or the default one
            cfg = load_config(args.config, sets)
            name = cfg.executor.name if cfg.executor is not None else _default_executor_name()
            sets.append(f"executor.name={name}")
        _check_workers(name, params)
        sets += [f"executor.{name}.{key}={json.dumps(value)}" for key, value in params.items()]
    return sets


def command_executor(args: argparse.Namespace) -> Executor | None:
    """The executor ``--executor NAME --workers N --executor-param K=V`` asks for (None: the default).
    Without ``--executor``, the default one (local processes, as with no option at all) is built
    from its own class, without loading the plugins (a command can then start its workers before
    that: ``slamfw predict``), also where the plugin that registers it is disabled."""
    params = _executor_params(args)
    if args.executor is None and not params:
        return None
    if args.executor is None:
        from ..execution.local import LocalExecutor
        return LocalExecutor(**LocalExecutor.validate_params(params, "executor"))
    name = args.executor
    _check_workers(name, params)
    return registry.create("executor", name, params, where="--executor")


def cmd_predict(args: argparse.Namespace) -> int:
    from functools import partial

    from ..components.executor import import_modules
    from ..execution.allocator import tune_allocator
    from ..workflows.execution import make_executor
    from ..workflows.outdir import check_catalog_output
    tune_allocator()      # glibc's allocator for large arrays, here and in the workers started for it
    check_catalog_output(args.output, args.force)    # before loading anything
    overrides = key_values(args.reader_param, "--reader-param")
    inferer_params = key_values(args.inferer_param, "--inferer-param")
    executor = command_executor(args) or make_executor(None)
    from ..model import SlamfwModel, component_names
    try:
        components = component_names(args.model)
        if components:                       # a model file (else its load below says why, no worker started)
            executor.prestart()              # the workers start while this process imports and loads the model
            from ..workflows.infer import predict_modules
            executor.prestart(partial(import_modules, predict_modules(components, args.reader)))
        from ..workflows.predict import predict_catalog
        model = SlamfwModel.load(args.model)
        res = predict_catalog(model, args.output, args.data, args.reader, overrides, chunk_size=args.chunk_size,
                              executor=executor, force=args.force, inferer_params=inferer_params)
    finally:
        executor.close()
    print(f"catalogue of {res.n_spectra} stars ({res.n_converged} converged) written to {res.path} "
          f"in {res.wall_s:.1f} s ({res.n_spectra / max(res.wall_s, 1e-9):.1f} spectra/s)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ..reporting.compare_report import label_table, summary_table
    from ..workflows.compare import compare_emulators
    cfg = load_config(args.config, executor_overrides(args))
    names = args.emulators.split(",") if args.emulators else None
    res = compare_emulators(cfg, names, force=args.force)
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
    res = run_experiment(cfg, force=args.force)
    _print_reports(res)
    print(f"\ncatalogue, model and report in {res.output_dir}/")
    return 0
