"""The local backend: every tab into one .xlsx workbook, replaced atomically."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from openpyxl import Workbook

from publishing.tabs import Tab

EXCEL_MAX_ROWS = 1_048_576


class PublishError(RuntimeError):
    """A publish was refused before anything was written."""


@dataclass
class PublishReport:
    destination: str
    rows_per_tab: dict[str, int] = field(default_factory=dict)
    cells_written: int = 0
    requests_made: int = 0
    tabs_skipped: list[str] = field(default_factory=list)


class WorkbookPublisher:
    """Writes all tabs to a new file and renames it over the old one: a reader opens either the
    previous workbook or the new one, never a half-written file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def publish(self, tabs: list[Tab]) -> PublishReport:
        for tab in tabs:
            if len(tab.rows) + 1 > EXCEL_MAX_ROWS:
                raise PublishError(
                    f"Tab {tab.name!r} has {len(tab.rows):,} rows, more than a worksheet holds "
                    f"({EXCEL_MAX_ROWS - 1:,}); publish an aggregated mart instead."
                )
        report = PublishReport(destination=str(self.path))
        book = Workbook(write_only=True)
        for tab in tabs:
            sheet = book.create_sheet(title=tab.name[:31])
            sheet.append(tab.columns)
            for row in tab.rows:
                sheet.append(row)
            report.rows_per_tab[tab.name] = len(tab.rows)
            report.cells_written += (len(tab.rows) + 1) * len(tab.columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".xlsx", dir=self.path.parent)
        os.close(fd)
        try:
            book.save(tmp)
            # mkstemp makes the file private; the published workbook is for its readers.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return report
