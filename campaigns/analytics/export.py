"""CSV export of an analytics table, safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Google Sheets (CSV injection), so it gets a leading ``'``.
Names of communities and campaigns are typed by users, so every text cell is checked.
"""

from __future__ import annotations

import csv
import io

from campaigns.analytics.suppression import Cell, Table

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # Negative numbers are numbers, not formulas; they never occur in counts anyway.
        return str(value)
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def table_csv(table: Table) -> str:
    """The table's header, rows and (if any) a ``total`` row, as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([safe_cell(row.get(c)) for c in table.columns])
    if table.totals is not None:
        first = table.columns[0] if table.columns else ""
        writer.writerow(
            ["total" if c == first else safe_cell(table.totals.get(c)) for c in table.columns]
        )
    return out.getvalue()
