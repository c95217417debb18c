"""Reader ``specutils``: any file that ``specutils`` reads (``Spectrum.read(path, format=...)``).

:class:`SpecutilsReader` reads many files (a file, a directory, a glob, a list of files; see
:class:`~slamfw.FileReader`) with specutils' loaders (``specutils.Spectrum.read.list_formats()``
lists them: SDSS, APOGEE, JWST, HST, 6dFGS, MaNGA, ``wcs1d-fits``, ``tabular-fits``, ``ECSV``,
``ASCII``, ...) and converts each file with :meth:`slamfw.SpectralSet.from_spectra`:
wavelengths to Angstrom (sorted increasing), ``uncertainty`` to ivar (none: ivar 1), specutils'
mask (True = bad) inverted into slamfw's (True = good), flux units dropped. Each file keeps its own
grid. Needs ``pip install specutils`` (>= 2.0).

Parameters (besides :class:`~slamfw.FileReader`'s ``path`` and ``labels*``):

- ``format``: the specutils format name, e.g. ``"APOGEE apStar"``, ``"wcs1d-fits"``; None lets
  specutils identify each file (which fails when several loaders claim it: name it then).
- ``multi``: read with ``SpectrumList.read`` (files of several spectra: each becomes a star).
  Formats that specutils registers only for ``SpectrumList`` (GALAH, DESI, 6dFGS-combined, ...)
  are always read that way.
- ``medium``: ``"air"``, ``"vacuum"`` or ``""`` (unknown, never converted): specutils does not
  say, so the files' medium is this parameter's (one for the whole survey; a warning says so
  when the files' meta or FITS ``CTYPE1`` name one and the parameter is empty). It overrides
  :attr:`FileReader.medium` (a class attribute elsewhere) for this reader's instances, with the
  same meaning and the same name as the ``table`` reader's parameter.
- ``ids``: ``"meta"`` (default) takes each star's id from the spectrum's meta or FITS header
  (``id``, ``OBJID``, ``OBSID``, ``APOGEE_ID``, ``OBJ``, ``OBJECT``), falling back on the file name;
  ``"file"`` always uses the file name (``<stem>``, or ``<stem>-<k>`` for a file of several
  spectra): use it when several files hold the same object (visits), which would otherwise be
  rejected as repeats.

A directory is searched for ``*.fits``, ``*.fits.gz``, ``*.fit``, ``*.fit.gz``, ``*.fits.bz2`` and
``*.ecsv`` files; give a glob (``"spectra/*.txt"``) for other kinds (a single ``.txt`` path is a
list of files, see :func:`slamfw.data.files.expand_inputs`).

specutils' loaders read what their format defines and no more; for surveys slamfw has its own
reader for (``apogee``, ``lamost``), prefer that: specutils' ``APOGEE apStar`` loader, for one,
returns only the combined spectrum, without the pixel bitmask (chip-gap pixels have flux 0 and
an error of 1e10 in DR13 files, so a tiny but non-zero ivar), and specutils has no LAMOST loader.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from slamfw import DataError, FileReader, SpectralSet, hookimpl

SLAMFW_PLUGIN_API = (1, 2)


def spectrum_class() -> type:
    """specutils' ``Spectrum`` class (``Spectrum1D`` in specutils 1.x); ImportError if missing."""
    try:
        import specutils
    except ImportError:
        raise ImportError("the specutils reader needs specutils: pip install specutils") from None
    return getattr(specutils, "Spectrum", None) or specutils.Spectrum1D


def spectrum_list_class() -> type:
    """specutils' ``SpectrumList`` class."""
    spectrum_class()
    import specutils
    return specutils.SpectrumList


def source_stem(source: str) -> str:
    """The file name of ``source`` without its directory and its data-file suffixes."""
    name = Path(str(source)).name
    for suffix in (".gz", ".bz2", ".xz", ".fits", ".fit", ".fts", ".ecsv", ".txt", ".dat", ".csv"):
        name = name.removesuffix(suffix)
    return name

log = logging.getLogger(__name__)

__all__ = ["SpecutilsReader", "read_spectra_file"]


def _list_only(fmt: str | None) -> bool:
    """True when specutils registers ``fmt`` for SpectrumList but not for Spectrum."""
    if fmt is None:
        return False
    from astropy.io import registry

    def formats(cls) -> set[str]:
        return {str(f) for f in registry.get_formats(cls, "Read")["Format"]}

    return fmt not in formats(spectrum_class()) and fmt in formats(spectrum_list_class())


def read_spectra_file(path, format: str | None = None, multi: bool = False):
    """``Spectrum.read(path, format=format)`` (or ``SpectrumList.read`` with ``multi`` or a
    list-only format); every failure is a :class:`DataError` naming the file."""
    path = Path(path)
    cls = spectrum_list_class() if multi or _list_only(format) else spectrum_class()
    with warnings.catch_warnings(record=True) as caught:       # loaders warn a lot (FITS fixes, WCS)
        warnings.simplefilter("always")
        try:
            out = cls.read(str(path), format=format) if format is not None else cls.read(str(path))
        except Exception as err:  # specutils/astropy raise many kinds for a file they cannot read
            msg = (str(err).strip().splitlines() or [""])[0]   # IORegistryError appends a table of formats
            hint = ("; set the reader's format (specutils.Spectrum.read.list_formats() lists them)"
                    if format is None else "")
            raise DataError(f"specutils: cannot read {path.name}{f' as {format!r}' if format else ''}: "
                            f"{type(err).__name__}: {msg[:300]}{hint}") from None
    for w in caught:
        log.debug("specutils: %s: %s: %s", path.name, w.category.__name__, w.message)
    return out


class SpecutilsReader(FileReader):
    """Reader ``specutils``: any file specutils reads (``format``), one or more stars per file."""

    patterns = ("*.fits", "*.fits.gz", "*.fit", "*.fit.gz", "*.fits.bz2", "*.ecsv")

    class Params(FileReader.Params):
        format: str | None = Field(None, description="specutils format (Spectrum.read's format=, e.g. "
                                                     "'APOGEE apStar', 'wcs1d-fits'); None: specutils guesses")
        multi: bool = Field(False, description="read with SpectrumList.read: every spectrum of a file is a star")
        medium: Literal["", "air", "vacuum"] = Field("", description="wavelength medium of the files "
                                                                     "('' unknown: never converted)")
        ids: Literal["meta", "file"] = Field("meta", description="star ids from the spectrum's meta/header, "
                                                                 "or from the file name")

    def read_file(self, path: Path) -> SpectralSet:
        path = Path(path)
        spectra = read_spectra_file(path, self.format, self.multi)
        items = [spectra] if isinstance(spectra, spectrum_class()) else list(spectra)
        if not items:
            raise DataError(f"specutils: {path.name} holds no spectrum")
        ids = None
        if self.ids == "file":
            n = sum(1 if getattr(s.flux, "ndim", 1) == 1 else s.flux.shape[0] for s in items)
            stem = source_stem(path.name)
            ids = [stem] if n == 1 else [f"{stem}-{k}" for k in range(n)]
        ss = SpectralSet.from_spectra(items, ids=ids, medium=self.medium, source=path.name)
        if not self.medium and ss.medium and not getattr(self, "_medium_said", False):
            self._medium_said = True     # once per reader: a survey's files say the same
            log.warning("specutils: %s says its wavelengths are in %s (its meta or CTYPE1), but the reader's medium "
                        "parameter is empty, so they are taken as unknown and never converted: set medium = %r to "
                        "use it", path.name, ss.medium, ss.medium)
        ss.medium = self.medium                          # the parameter wins over a spectrum's meta
        return ss


@hookimpl
def slamfw_register_readers(register):
    register("specutils", SpecutilsReader)
