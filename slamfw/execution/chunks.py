"""Splitting work into pieces."""
from __future__ import annotations


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in pieces of ``size``."""
    size = max(1, int(size))
    return [(s, min(s + size, n)) for s in range(0, n, size)]
