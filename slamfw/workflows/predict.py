"""``slamfw predict``: label a survey with a saved model, streamed chunk by chunk.

Read -> prepare -> infer runs on each chunk on the executor; each finished chunk's catalogue part
is written atomically under ``<catalogue folder>/.checkpoints/`` (named by the model, the inferer
and the chunk's ids and spectra), and the catalogue is assembled from the parts at the end. A run
killed at any point, rerun with the same command (under any executor and number of workers),
redoes only the chunks that were not finished, and gives the same catalogue to the last bit (on
a GPU, to the device's rounding: the calling process infers the prepared chunks, joined into
large calls, and which chunks share a call depends on the executor and on the chunks reused;
see :func:`slamfw.workflows.infer.infer_in_process`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..components.executor import Executor, using_executor
from ..data.catalog import write_catalog_parts
from ..data.files import rejected_path, write_rejected
from ..errors import DataError, name_some
from ..model import SlamfwModel
from ..stats.quality import flagged_fraction, warn_if_unlike_training
from .execution import executing
from .infer import (
    check_chunk_size, iter_parts, model_inferer, model_prior, parts_store, predict_stream, read_with_model_reader,
    remove_parts, stars_without_prior, warn_stars_without_prior,
)
from .outdir import check_catalog_output, forced

log = logging.getLogger(__name__)


@dataclass
class PredictResult:
    """Where the catalogue went, how many stars it holds and how many converged, and the wall time."""

    path: Path
    n_spectra: int
    n_converged: int
    wall_s: float


def predict_catalog(model: SlamfwModel, output: str | Path, data_path: str | None = None, reader: str | None = None,
                    reader_params: dict[str, Any] | None = None, chunk_size: int = 500,
                    executor: Executor | None = None, force: bool | None = None,
                    inferer_params: dict[str, Any] | None = None) -> PredictResult:
    """Label the survey at ``data_path`` (read like the model's training set, or with ``reader``) and
    write the catalogue ``output`` (.fits or .ecsv), streaming on ``executor`` (default: the one in
    use, else local processes).

    ``output`` is checked before any work: a catalogue suffix, a folder that can be written, and no
    existing file there that slamfw did not write, unless ``force`` (None: as the enclosing
    :func:`~slamfw.workflows.outdir.forcing` block says, else no). ``inferer_params`` change the
    model's inferer's parameters for this run (its catalogue parts are kept apart from others')."""
    check_chunk_size(chunk_size)
    path = check_catalog_output(output, force)
    source = read_with_model_reader(model, data_path, reader, reader_params)
    inferer, prior = model_inferer(model, inferer_params), model_prior(model)
    checkpoints = path.parent / ".checkpoints"
    # two runs of the same model and data into one folder share their catalogue parts: the first to
    # finish leaves them to the other (ChunkStore.in_use)
    with parts_store(model, inferer, checkpoints, prior).in_use():
        t0 = time.perf_counter()
        with (using_executor(executor) if executor is not None else executing(None)):
            keys = predict_stream(model, source, inferer, checkpoints, chunk_size, prior)
        counts, excluded, without_prior = [], [], [0, 0]

        def tally(part: dict[str, np.ndarray]) -> None:
            excluded.extend(str(i) for i in part.get("excluded", []))
            without_prior[0] += stars_without_prior(prior, part["ids"])
            without_prior[1] += part["ids"].size
            if part["ids"].size:
                counts.append(flagged_fraction({k[len("extra/"):]: v for k, v in part.items()
                                                if k.startswith("extra/")}))

        max_bad = model.preprocess.get("max_bad_pixels")
        why = f"more than preprocess.max_bad_pixels={max_bad} bad pixels on the model's grid"
        try:
            path, n, n_conv = write_catalog_parts(lambda: iter_parts(model, inferer, checkpoints, keys, prior),
                                                  model.label_units, path, on_part=tally)
        except DataError as err:
            if not excluded or counts:
                raise
            write_rejected(source, rejected_path(path), "survey", [(f"star {i}", why) for i in excluded],
                           force=forced(force))
            raise DataError(f"no star of the data could be prepared: all {len(excluded)} have {why} (a bad pixel: "
                            f"ivar 0 or mask False in the data, outside the star's wavelengths, or given no weight by "
                            f"the normaliser, as where the continuum is not above 0); they are listed in "
                            f"{rejected_path(path)}") from err
        warn_if_unlike_training(sum(c[0] for c in counts), sum(c[1] for c in counts), log,
                                str(data_path or "the survey"))
        warn_stars_without_prior(prior, without_prior[0], without_prior[1], str(data_path or "the survey"))
        if excluded:
            log.warning("predict: %d star(s) could not be prepared (%s) and are not in the catalogue; listed in %s: %s",
                        len(excluded), why, rejected_path(path).name, name_some(excluded, 5))
        write_rejected(source, rejected_path(path), "survey", [(f"star {i}", why) for i in excluded],
                       force=forced(force))
        remove_parts(model, inferer, checkpoints, keys, prior)
        wall = time.perf_counter() - t0
        log.info("predict: %d spectra in %.1f s (%.1f spectra/s)", n, wall, n / wall if wall else 0)
        return PredictResult(path, n, n_conv, wall)
