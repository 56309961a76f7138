"""One report, three forms: the console page, an Excel workbook (openpyxl) and a PDF (WeasyPrint
over the print template, CJK font from the system). The owners'-committee version is the same
report built without any table that names a person."""
from __future__ import annotations

from dataclasses import dataclass, field
from io import BytesIO
from typing import Sequence

from markupsafe import Markup
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter


@dataclass(frozen=True)
class Table:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    personal: bool = False  # names a person (staff, residents): left out of the public version


@dataclass(frozen=True)
class Report:
    title: str
    scope: str  # which projects, in words
    period: str
    previous: str
    tables: Sequence[Table]
    charts: Sequence[Markup] = field(default_factory=tuple)
    public: bool = False  # the owners'-committee version

    def shown_tables(self) -> list[Table]:
        return [t for t in self.tables if not (self.public and t.personal)]


def to_excel(report: Report) -> bytes:
    """One sheet per table, headers bold, column widths fitted to Chinese text."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for index, table in enumerate(report.shown_tables()):
        sheet = book.create_sheet(_sheet_name(table.title, index))
        sheet.append([f"{report.title} · {report.scope} · {report.period}"])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append(list(table.headers))
        for cell in sheet[2]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDE6EE")
        for row in table.rows:
            sheet.append([_cell(value) for value in row])
        for column, header in enumerate(table.headers, start=1):
            longest = max([len(str(header))] + [len(str(r[column - 1])) for r in table.rows if len(r) >= column])
            sheet.column_dimensions[get_column_letter(column)].width = min(8 + longest * 2, 60)
            for cells in sheet.iter_rows(min_row=3, min_col=column, max_col=column):
                cells[0].alignment = Alignment(horizontal="left")
                if isinstance(cells[0].value, float):
                    cells[0].number_format = "0.00"  # averages: two decimals, as on the page
    buffer = BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _sheet_name(title: str, index: int) -> str:
    cleaned = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28]
    return cleaned or f"表{index + 1}"


def _cell(value: object) -> object:
    return value if isinstance(value, (int, float)) or value is None else str(value)


def to_pdf(html: str, base_url: str) -> bytes:
    """The print template's HTML as a PDF (A4, the system's CJK font)."""
    from weasyprint import HTML  # imported here: it loads pango at import time, only the export needs it

    return HTML(string=html, base_url=base_url).write_pdf()
