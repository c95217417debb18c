"""``slamfw convert``: any reader's spectra written in the spectra table format.

The output (``docs/table-format.md``) is what the ``table`` reader reads back: a user can
inspect the spectra a survey reader produced (their grids, masks, metadata) and reuse them
without the original files. Files the reader rejects are listed in ``<output stem>-rejected.csv``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..components.base import ParamRole, params_with_role
from ..data.files import rejected_path, write_rejected
from ..data.spectra_io import table_suffix, write_spectra_table
from ..errors import ConfigError
from .execution import executing
from .outdir import check_file, check_standalone_output

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    path: Path
    n_stars: int
    n_pixels: int
    per_star_grid: bool
    rejected: Path | None


def convert_spectra(reader: str, output: str | Path, data: str | None = None,
                    params: dict[str, Any] | None = None, force: bool = False) -> ConvertResult:
    """Read with the reader ``reader`` (``data`` its input path, ``params`` its other parameters)
    and write the spectra to ``output`` (.fits, .fits.gz, .ecsv or .npz); an existing ``output``
    is replaced only with ``force``."""
    table_suffix(output)                                     # check the output before reading
    if Path(output).is_file() and not force:
        raise ConfigError(f"--output {str(output)!r} exists; add --force to replace it")
    check_standalone_output(Path(output), "--output", force)   # a usable path, not a finished run's file
    check_file(rejected_path(Path(output)).absolute(), "--output (its list of rejected files)", force)
    params = dict(params or {})
    cls = registry.get_component("reader", reader, where="--reader")
    paths = params_with_role(cls, ParamRole.INPUT_PATH)
    if data is not None:
        if not paths:
            raise ConfigError(f"--data: the reader {reader!r} reads no files")
        params[paths[0]] = str(data)
    elif paths and paths[0] not in params:
        raise ConfigError(f"--data: the reader {reader!r} reads files; say which with --data PATH")
    rd = registry.create("reader", reader, params, where="--reader")
    with executing(None):
        ss = rd.read()
    out = write_spectra_table(ss, output)
    rej = write_rejected(rd, rejected_path(out), "convert", force=force)
    return ConvertResult(out, ss.n_stars, ss.n_pixels, ss.per_star_grid, rej)
