"""Columns of a small FITS binary table, read from its header and its bytes (the per-file readers' tables).

astropy builds a ``Column`` object per column, twice (``hdu.columns`` and ``hdu.data``), before any value
is read: about 10 ms for the 72 columns of an aspcapStar file's ASPCAP table, most of the time it takes
to read the whole file. A survey reads hundreds of thousands of such files, and wants a few columns of
each. :class:`BinTable` parses the column layout from the header cards (``TTYPEn``, ``TFORMn``,
``TDIMn``) and reads the data unit's bytes as one numpy structured array.

It reads the fixed-width formats ``L``, ``B``, ``I``, ``J``, ``K``, ``A``, ``E`` and ``D``, without
scaling (``TSCALn``, ``TZEROn``), from an uncompressed file. Any other column (bits ``X``, complex,
variable-length arrays ``P``/``Q``, a scaled or unsigned column, a ``TDIMn`` that does not match the
repeat count), and every column of a compressed file, is read by astropy (``hdu.data[name]``), so the
values are always astropy's.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

#: FITS binary-table format letter -> numpy type (big-endian, as stored); ``A`` is handled apart.
_NUMPY_TYPE = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8, "A": 1, "X": 1 / 8, "C": 8, "M": 16,
          "P": 8, "Q": 16}
_TFORM = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])", re.IGNORECASE)
_TDIM = re.compile(r"^\s*\(\s*(\d+(?:\s*,\s*\d+)*)\s*\)\s*$")
#: How an uncompressed FITS file starts; astropy decompresses any other it opens (gzip, bzip2, zip,
#: xz, LZW), and its offsets are then those of the decompressed bytes.
PLAIN = b"SIMPLE"
#: The prefix of a column's field in the rows' structured array (a TTYPE may be blank).
_SLOT = "c_"


class BinTable:
    """The columns of the binary-table HDU ``hdu`` (of the file ``path``, opened by astropy), by name.

    ``names``: the column names as ``TTYPEn`` gives them; ``len(table)``: the rows (``NAXIS2``);
    ``name in table`` and ``table[name]`` ignore case, as astropy does (names that differ only in
    case are astropy's to tell apart). ``table[name]`` is a new array of shape (rows,) for one
    value per row, (rows, repeat) for a vector, or (rows, *TDIM reversed) where ``TDIMn`` gives a
    shape; logical columns are bool, character columns bytes (``S``) where read from the bytes
    (astropy's may be str: compare stripped and decoded). Raises KeyError for a name the table
    does not have. Nothing is read before the first ``table[name]``; then the whole data unit is
    read once, from a file that starts with ``SIMPLE`` (any other, compressed, is astropy's).
    """

    def __init__(self, hdu, path) -> None:
        hdr = hdu.header
        self._hdu, self._path = hdu, str(path)
        self.n_rows = int(hdr.get("NAXIS2", 0))
        self.row_bytes = int(hdr.get("NAXIS1", 0))
        cards = _column_cards(hdr)
        self.names = _names(hdr, cards)
        self._fields: dict[str, tuple[str, tuple[str, tuple[int, ...]], int] | None] = {}   # upper name -> field
        offset: int | None = 0
        for i, name in enumerate(self.names, 1):
            match = _TFORM.match(str(cards["TFORM"].get(i, "")))
            repeat, code = (int(match.group(1) or 1), match.group(2).upper()) if match else (0, "")
            key = name.upper()
            if key not in self._fields:     # (a repeated name: astropy's, below)
                scaled = i in cards["TSCAL"] or i in cards["TZERO"]
                self._fields[key] = None if offset is None or not match else _field(
                    code, repeat, cards["TDIM"].get(i), scaled, offset)
            offset = None if offset is None or not match else offset + int(np.ceil(repeat * _BYTES[code]))
        if offset != self.row_bytes:        # a layout this reader does not follow: astropy reads every column
            self._fields = dict.fromkeys(self._fields)
        for key in [k for k, n in Counter(n.upper() for n in self.names).items() if n > 1]:
            self._fields[key] = None        # two columns of one name ("flux", "FLUX"): astropy's (exact case first)
        self._rows: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n_rows

    def __contains__(self, name: str) -> bool:
        return name.rstrip().upper() in self._fields

    def __getitem__(self, name: str) -> np.ndarray:
        key = name.rstrip().upper()           # as astropy, which ignores trailing blanks
        if key not in self._fields:
            raise KeyError(f"no column {name!r} in the table (columns: {', '.join(self.names)})")
        field = self._fields[key]
        rows = None if field is None else self._read()
        if rows is None:
            return np.array(self._hdu.data[name])     # a copy: the HDU's data stay as they are
        code, _, _ = field
        values = rows[_SLOT + key]
        return values == b"T" if code == "L" else values.copy()

    def _read(self) -> np.ndarray | None:
        """The rows as one structured array of the columns this reader reads (None where astropy
        must read: a compressed file, or one with fewer bytes than its header says)."""
        if self._rows is None:
            size = self.n_rows * self.row_bytes
            loc = (self._hdu.fileinfo() or {}).get("datLoc")
            raw = b""
            if loc is not None:
                with open(self._path, "rb") as fh:
                    if fh.read(len(PLAIN)) == PLAIN:    # astropy's offsets are the file's own bytes
                        fh.seek(int(loc))
                        raw = fh.read(size)
            fields = {k: f for k, f in self._fields.items() if f is not None}
            dtype = np.dtype({"names": [_SLOT + k for k in fields],
                              "formats": [f[1] for f in fields.values()],
                              "offsets": [f[2] for f in fields.values()], "itemsize": self.row_bytes})
            self._rows = (np.frombuffer(raw, dtype, count=self.n_rows) if len(raw) == size and size
                          else np.zeros(0, dtype))
        return self._rows if len(self._rows) else None


def column_names(header) -> list[str]:
    """The column names of a binary table from its header: ``TTYPEn`` (``col<n>`` where absent)."""
    return _names(header, _column_cards(header))


_COLUMN_CARD = re.compile(r"(TTYPE|TFORM|TDIM|TSCAL|TZERO)(\d+)$")


def _column_cards(header) -> dict[str, dict[int, object]]:
    """``{"TTYPE": {n: value}, "TFORM": ..., "TDIM": ..., "TSCAL": ..., "TZERO": ...}`` in one pass
    over the cards (twice as fast as looking each keyword up)."""
    out: dict[str, dict[int, object]] = {k: {} for k in ("TTYPE", "TFORM", "TDIM", "TSCAL", "TZERO")}
    for card in header.cards:
        match = _COLUMN_CARD.match(card.keyword)
        if match:
            out[match.group(1)].setdefault(int(match.group(2)), card.value)
    return out


def _names(header, cards: dict[str, dict[int, object]]) -> list[str]:
    return [str(cards["TTYPE"].get(i, f"col{i}")).rstrip() for i in range(1, int(header.get("TFIELDS", 0)) + 1)]


def _field(code: str, repeat: int, tdim, scaled: bool,
           offset: int) -> tuple[str, tuple[str, tuple[int, ...]], int] | None:
    """(format letter, (numpy type, shape per row), byte offset) of a column :class:`BinTable` reads
    itself, or None for one astropy reads."""
    if scaled or repeat == 0 or (code not in _NUMPY_TYPE and code != "A"):
        return None
    if tdim is None:
        if code == "A":
            return code, (f"S{repeat}", ()), offset
        return code, (_NUMPY_TYPE[code], () if repeat == 1 else (repeat,)), offset
    match = _TDIM.match(str(tdim))
    if match is None:
        return None
    dims = tuple(int(d) for d in match.group(1).split(","))[::-1]     # FITS lists the fastest axis first
    if code == "A":                                                    # ... which, for strings, is their width
        dims, width = dims[:-1], dims[-1]
        if width == 0 or width * int(np.prod(dims, dtype=np.int64)) != repeat:
            return None
        return code, (f"S{width}", dims), offset
    if int(np.prod(dims, dtype=np.int64)) != repeat:
        return None
    return code, (_NUMPY_TYPE[code], dims), offset
