"""An XlsxWriter worksheet that stores whole columns and writes its rows in one loop.

XlsxWriter spends most of a large workbook's time in per-cell Python: every ``write_string``
goes through an argument converter, a bounds check and a namedtuple, and every cell is later
written by a general ``_write_cell`` that looks up formats and dispatches on the cell's type.
The workbook's cells are plain strings and integers without formats, so ``TableSheet`` stores a
column at once (the same cell records, the same shared strings in the same order, the same
dimensions) and writes such cells with one formatted string each; every other cell, and every
sheet with row formats or comments, takes XlsxWriter's own code. The files are the same bytes as
with the stock ``Worksheet`` (``tests/test_results_view.py``); docs/DESIGN.md §28.

It subclasses the worksheet through XlsxWriter's ``add_worksheet(worksheet_class=...)`` and uses
some of its internals (the cell table, the shared-string table, the row writer), which is why
the version is pinned and the test compares the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import CellNumberTuple, CellStringTuple, Worksheet

Cell = str | int | float | None


class TableSheet(Worksheet):
    def write_column(self, first_row: int, col: int, values: Sequence[Cell]) -> None:
        """``values`` down column ``col`` from ``first_row``: as ``write_string`` for each
        non-empty string and ``write_number`` for each number; empty strings and None stay blank."""
        if self.constant_memory or first_row + len(values) > self.xls_rowmax or col >= self.xls_colmax:
            self._write_column_slowly(first_row, col, values)
            return
        table = self.table
        shared = self.str_table._get_shared_string_index
        new = tuple.__new__  # the cell records, without their constructors' keyword handling
        long_string = self.xls_strmax // 2  # longer ones may need the library's UTF-16 check
        first = last = None
        for row, value in enumerate(values, first_row):
            kind = type(value)
            if kind is str:
                if not value:
                    continue
                if len(value) > long_string:
                    self._write_string(row, col, value)
                else:
                    table[row][col] = new(CellStringTuple, (shared(value), None))
            elif value is None:
                continue
            elif kind is int:
                table[row][col] = new(CellNumberTuple, (value, None))
            else:
                self._write_number(row, col, value)  # type: ignore[arg-type]
            if first is None:
                first = row
            last = row
        if first is not None and last is not None:
            self._check_dimensions(first, col)
            self._check_dimensions(last, col)

    def _write_column_slowly(self, first_row: int, col: int, values: Sequence[Cell]) -> None:
        for row, value in enumerate(values, first_row):
            if isinstance(value, str):
                if value:
                    self._write_string(row, col, value)
            elif value is not None:
                self._write_number(row, col, value)

    def _plain(self) -> bool:
        """Whether only cells, no row formats or comments, decide how rows are written."""
        return not (self.constant_memory or self.row_info or self.comments)

    def _calculate_spans(self) -> None:
        if not self._plain() or self.dim_rowmin is None:
            super()._calculate_spans()
            return
        spans: dict[int, str] = {}
        table = self.table
        lowest = highest = None
        for row_num in range(self.dim_rowmin, self.dim_rowmax + 1):
            cells = table.get(row_num)
            if cells:
                low, high = min(cells), max(cells)
                lowest = low if lowest is None else min(lowest, low)
                highest = high if highest is None else max(highest, high)
            block_end = (row_num + 1) % 16 == 0 or row_num == self.dim_rowmax
            if block_end and lowest is not None:
                spans[row_num // 16] = f"{lowest + 1}:{highest + 1}"
                lowest = highest = None
        self.row_spans = spans

    def _write_rows(self) -> None:
        if not self._plain() or self.dim_rowmin is None:
            super()._write_rows()
            return
        self._calculate_spans()
        write = self.fh.write
        table, spans, col_info = self.table, self.row_spans, self.col_info
        columns = range(self.dim_colmin, self.dim_colmax + 1)
        # a cell without a format of its own takes its column's, if any: those go the long way
        plain = {
            col: (col not in col_info or col_info[col].column_format is None, xl_col_to_name(col))
            for col in columns
        }
        for row_num in range(self.dim_rowmin, self.dim_rowmax + 1):
            cells = table.get(row_num)
            if not cells:
                continue
            self._write_row(row_num, spans.get(row_num // 16))
            number = row_num + 1
            for col in columns:
                cell = cells.get(col)
                if cell is None:
                    continue
                kind = type(cell)
                unformatted, letters = plain[col]
                if cell.format is None and unformatted:
                    if kind is CellStringTuple:
                        write(f'<c r="{letters}{number}" t="s"><v>{cell.string}</v></c>')
                        continue
                    if kind is CellNumberTuple:
                        write(f'<c r="{letters}{number}"><v>{cell.number:.16G}</v></c>')
                        continue
                self._write_cell(row_num, col, cell)
            self._xml_end_tag("row")
