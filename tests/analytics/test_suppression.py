"""Small-cell suppression with real numbers: a hidden cell never comes back by subtraction."""

from __future__ import annotations

import csv
import io

from campaigns.analytics.export import safe_cell, table_csv
from campaigns.analytics.suppression import SUPPRESSED, Cell, Table, suppress

H = SUPPRESSED


def column(values: list[int]) -> tuple[list[Cell], Cell]:
    rows: list[dict[str, Cell]] = [{"k": i, "n": v} for i, v in enumerate(values)]
    table = Table(
        name="t", key_columns=("k",), count_columns=("n",), rows=rows, totals={"n": sum(values)}
    )
    out = suppress(table)
    assert out.totals is not None
    return [r["n"] for r in out.rows], out.totals["n"]


def test_one_small_cell_takes_the_next_smallest_with_it() -> None:
    # 42 - 12 - 20 would give 3 back if only 3 were hidden: 7 is hidden with it.
    assert column([12, 3, 7, 20]) == ([12, H, H, 20], 42)


def test_one_small_cell_beside_a_single_other_hides_both() -> None:
    assert column([12, 3]) == ([H, H], 15)


def test_one_small_cell_and_zeros_hides_the_total() -> None:
    # Zeros are shown (they identify nobody), so the total is the only complement left.
    assert column([0, 3, 0, 0]) == ([0, H, 0, 0], H)


def test_two_small_cells_protect_each_other() -> None:
    # 36 - 30 = 6 says only that the two hidden cells sum to 6: 2+4, 1+5, 3+3 …
    assert column([2, 30, 4]) == ([H, 30, H], 36)


def test_nothing_small_nothing_hidden_and_zero_stays_zero() -> None:
    assert column([5, 0, 17]) == ([5, 0, 17], 22)


def test_a_small_total_is_hidden() -> None:
    assert column([1, 1]) == ([H, H], H)


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    for bad in ("+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad).startswith("'")
    assert safe_cell("Tapachula") == "Tapachula"
    assert safe_cell(-3) == "-3"  # a number is a number
    table = Table(
        name="t",
        key_columns=("community",),
        count_columns=("n",),
        rows=[{"community": "=cmd|' /C calc'!A0", "n": 7}],
        totals={"n": 7},
    )
    rows = list(csv.reader(io.StringIO(table_csv(table))))
    assert rows == [["community", "n"], ["'=cmd|' /C calc'!A0", "7"], ["total", "7"]]
