"""Small-cell suppression, and the table shape every analytics query returns.

A count of 1 to 4 is shown as ``"<5"`` to everyone but admins (0 is shown: it identifies
nobody).  Totals would give a hidden cell back by subtraction, so suppression is
complementary, column by column: when a column with a total has exactly one hidden cell, the
smallest other non-zero cell of that column is hidden too; when there is no such cell, the
total is hidden.  Columns are treated independently: tables that would let one column be
derived from others (a "total" column next to its parts) are not built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

SUPPRESS_BELOW = 5
SUPPRESSED = "<5"

Cell = int | float | str | None


@dataclass(frozen=True)
class Table:
    """One analytics table: label columns, count columns (suppressible) and their totals.

    ``rows`` are dicts keyed by column name, in display order.  ``value_columns`` are derived
    values (e.g. a median) that are hidden by the query itself when their base count is small.
    ``total_rows`` counts the rows before paging; ``next_cursor`` fetches the next page.
    """

    name: str
    key_columns: tuple[str, ...]
    count_columns: tuple[str, ...]
    rows: list[dict[str, Cell]]
    totals: dict[str, Cell] | None = None
    value_columns: tuple[str, ...] = ()
    suppressed: bool = False
    total_rows: int = 0
    next_cursor: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key_columns + self.count_columns + self.value_columns

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "count_columns": list(self.count_columns),
            "rows": self.rows,
            "totals": self.totals,
            "suppressed": self.suppressed,
            "total_rows": self.total_rows,
            "next_cursor": self.next_cursor,
        }


def _small(value: int) -> bool:
    return 0 < value < SUPPRESS_BELOW


def hidden_cells(
    columns: Sequence[Sequence[int]], totals: Sequence[int] | None
) -> tuple[list[set[int]], list[bool]]:
    """For each column of counts: the row indexes to hide, and whether to hide its total.

    The rule of the module docstring, on plain ints (no dicts: tables of tens of thousands of
    rows are suppressed in full before a page is cut from them).
    """
    hidden_rows: list[set[int]] = []
    hidden_totals: list[bool] = []
    for c, values in enumerate(columns):
        hidden = {i for i, v in enumerate(values) if 0 < v < SUPPRESS_BELOW}
        total_hidden = False
        if totals is not None:
            if _small(totals[c]):
                total_hidden = True
            elif len(hidden) == 1:
                best = -1
                for i, v in enumerate(values):
                    if v > 0 and i not in hidden and (best < 0 or v < values[best]):
                        best = i
                if best >= 0:
                    hidden.add(best)
                else:
                    total_hidden = True
        hidden_rows.append(hidden)
        hidden_totals.append(total_hidden)
    return hidden_rows, hidden_totals


def suppress(table: Table) -> Table:
    """The table with small cells hidden (primary) and their complements (secondary).

    Counts must still be ints when this is called; totals, when present, are the column sums.
    """
    columns = [[int(r[c] or 0) for r in table.rows] for c in table.count_columns]
    totals = (
        [int(table.totals[c] or 0) for c in table.count_columns]
        if table.totals is not None
        else None
    )
    hidden_rows, hidden_totals = hidden_cells(columns, totals)
    rows = [dict(r) for r in table.rows]
    new_totals = dict(table.totals) if table.totals is not None else None
    for c, column in enumerate(table.count_columns):
        for i in hidden_rows[c]:
            rows[i][column] = SUPPRESSED
        if new_totals is not None and hidden_totals[c]:
            new_totals[column] = SUPPRESSED
    return replace(table, rows=rows, totals=new_totals, suppressed=True)


def hide_small(value: int, *, exact: bool) -> int | str:
    """One stand-alone count (no total beside it)."""
    return value if exact or not _small(value) else SUPPRESSED
