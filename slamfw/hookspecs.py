"""Every hook a slamfw plugin can implement.

A plugin is a module (or object) registered in the ``slamfw`` entry-point group. It implements
one or more of the hooks below with :data:`slamfw.hookimpl`; each hook receives a ``register``
callable and calls ``register(name, cls)`` once per component it provides. Configs then name
components by that ``name`` (``[emulator] name = "slam"``).

Example::

    from slamfw import hookimpl, Emulator

    class MyEmulator(Emulator):
        ...

    @hookimpl
    def slamfw_register_emulators(register):
        register("my-emulator", MyEmulator)
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("slamfw")
hookimpl = pluggy.HookimplMarker("slamfw")


@hookspec
def slamfw_register_readers(register):
    """Register readers: ``register(name, cls)`` with ``cls`` a :class:`slamfw.Reader` subclass.

    A reader turns files (or a generator) into a :class:`slamfw.SpectralSet`. Its ``Params``
    should have a ``path`` field if it reads files.
    """


@hookspec
def slamfw_register_normalizers(register):
    """Register normalisers: ``register(name, cls)`` with ``cls`` a :class:`slamfw.Normalizer` subclass.

    A normaliser divides each spectrum by its pseudo-continuum.
    """


@hookspec
def slamfw_register_emulators(register):
    """Register emulators: ``register(name, cls)`` with ``cls`` a :class:`slamfw.Emulator` subclass.

    An emulator maps labels to normalised flux and is saved through ``to_state``/``from_state``.
    """


@hookspec
def slamfw_register_inferers(register):
    """Register inferers: ``register(name, cls)`` with ``cls`` a :class:`slamfw.Inferer` subclass.

    An inferer finds the labels of observed spectra given a trained model.
    """


@hookspec
def slamfw_register_analyzers(register):
    """Register analyzers: ``register(name, cls)`` with ``cls`` a :class:`slamfw.Analyzer` subclass.

    An analyzer turns a run's products into a :class:`slamfw.Report`.
    """
