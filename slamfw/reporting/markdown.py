"""Markdown rendering of astropy tables, for reports."""
from __future__ import annotations

from typing import Any

import numpy as np


def table_to_markdown(table: Any) -> str:
    """An astropy Table as a GitHub-flavoured markdown table."""
    cols = table.colnames
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    rows = []
    for row in table:
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, (float, np.floating)):
                cells.append(f"{v:.4g}")
            else:
                cells.append(str(v))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])
