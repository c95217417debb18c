"""The Analyzer contract: a run's products in, a :class:`Report` out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..data.results import LabelResult
from ..data.spectra import SpectralSet
from ..reporting.markdown import table_to_markdown
from .base import Component


@dataclass
class AnalysisContext:
    """Whatever a run made, for analyzers to read.

    ``test`` is the prepared test set (true labels in ``test.labels`` when known), ``result``
    the inferred labels for its stars in the same order. ``model`` is the trained or loaded
    model (a :class:`slamfw.model.SlamfwModel`: ``emulator``, ``emulator_name``, ``wave``,
    ``train_labels``, ``error_model``); ``train`` the prepared training set, None when the model
    was loaded from a file. ``inferer`` and ``prior`` (fitted; None: flat) are those the run used,
    for analyzers that infer again (``snr-degrade``); ``label(flux, ivar, ids) -> LabelResult``
    labels prepared spectra (N, P) the way the run did: the inferer with the prior, then the flags
    and the calibrated errors the pipeline adds (None: use ``inferer`` directly). ``output_dir``
    is where figures go (None: make none). ``seed`` is the experiment's seed.
    """

    label_names: list[str]
    label_units: list[str]
    model: Any = None
    test: SpectralSet | None = None
    result: LabelResult | None = None
    train: SpectralSet | None = None
    output_dir: Any = None
    inferer: Any = None
    prior: Any = None
    seed: int = 0
    label: Any = None


@dataclass
class Report:
    """What an analyzer returns: named astropy tables, numbers, notes and figure paths."""

    title: str
    tables: dict[str, Any] = field(default_factory=dict)   # name -> astropy Table
    numbers: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [f"## {self.title}", ""]
        out += [f"{n}" for n in self.notes] + ([""] if self.notes else [])
        for key, val in self.numbers.items():
            out.append(f"- {key}: {val:.6g}")
        if self.numbers:
            out.append("")
        for name, table in self.tables.items():
            out += [f"### {name}", "", table_to_markdown(table), ""]
        for fig in self.figures:
            out += [f"![{fig}]({fig})", ""]
        return "\n".join(out)


class Analyzer(Component):
    """Turns a run's products into a :class:`Report`: ``analyze(ctx) -> Report``.

    Contract (``slamfw.testing.check_analyzer``): it works on whatever the context holds: a test
    set without true labels, a model loaded from a file (no training set), a single star.
    """

    def analyze(self, ctx: AnalysisContext) -> Report:
        raise NotImplementedError
