"""CSV files we hand to spreadsheets (manifests, statements), safe to open.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets: a traveller named `=HYPERLINK(...)` would run in
the operator's spreadsheet (CSV injection). Every text cell written here that starts so is
prefixed with a single quote, as OWASP recommends, which the spreadsheet shows as text.
Numbers we compute (int, Decimal) are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """`value`, with a text that a spreadsheet would take for a formula made plain text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document of `header` and `rows`, every cell made safe (see the module)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(cell) for cell in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()
