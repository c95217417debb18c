"""The one table of component kinds.

Every kind of component is one row: its base class, the pluggy hook that registers it (the hook
specifications in :mod:`slamfw.registry.hookspecs` are made from this table), the registry it
fills, and where an experiment config selects it. Adding a kind is one row here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .analyzer import Analyzer
from .base import Component
from .emulator import Emulator
from .executor import Executor
from .inferer import Inferer
from .normalizer import Normalizer
from .prior import Prior
from .reader import Reader


@dataclass(frozen=True)
class Kind:
    """One kind of component.

    name : the kind, as in ``slamfw plugins`` and ``slamfw check-plugin KIND NAME``
    base : the class every component of this kind subclasses
    plural : used in the hook name, ``slamfw_register_<plural>``
    does : one line saying what such a component does (hook docs, ``slamfw plugins``)
    sections : where a config selects it, as ``(dotted section, key holding the name)``
    many : a config lists several (``[[analyzers]]``) rather than one
    core_keys : further keys of its config sections that belong to the core, not the plugin
    path_keys : those core keys that hold paths (made absolute like the plugin's input paths)
    """

    name: str
    base: type[Component]
    plural: str
    does: str
    sections: tuple[tuple[str, str], ...] = ()
    many: bool = False
    core_keys: tuple[str, ...] = ()
    path_keys: tuple[str, ...] = ()

    @property
    def hook(self) -> str:
        return f"slamfw_register_{self.plural}"


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("reader", Reader, "readers", "reads spectra (files, a generator) into a SpectralSet",
         sections=(("data.train", "reader"), ("data.test", "reader")), core_keys=("holdout", "clean")),
    Kind("normalizer", Normalizer, "normalizers", "divides each spectrum by its pseudo-continuum",
         sections=(("normalizer", "name"),)),
    Kind("emulator", Emulator, "emulators", "maps labels to normalised flux; saved through to_state/from_state",
         sections=(("emulator", "name"),), core_keys=("model",), path_keys=("model",)),
    Kind("inferer", Inferer, "inferers", "finds the labels of observed spectra given a trained model",
         sections=(("inferer", "name"),)),
    Kind("prior", Prior, "priors", "says what is known of a star's labels before its spectrum is read",
         sections=(("prior", "name"),)),
    Kind("analyzer", Analyzer, "analyzers", "turns a run's products into a Report (tables, numbers, figures)",
         sections=(("analyzers", "name"),), many=True),
    Kind("executor", Executor, "executors", "runs independent tasks: in-process, on local processes, on a cluster",
         sections=(("executor", "name"),)),
)}


def kind_of(component: Component | type[Component]) -> Kind:
    """The kind whose base class ``component`` (a class or an instance) derives from."""
    cls = component if isinstance(component, type) else type(component)
    for kind in KINDS.values():
        if issubclass(cls, kind.base):
            return kind
    raise TypeError(f"{cls.__name__} is not a slamfw component: subclass one of "
                    f"{', '.join(k.base.__name__ for k in KINDS.values())}")
