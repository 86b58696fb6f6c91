"""Publish the configured marts with the backend the settings call for."""

from __future__ import annotations

from pathlib import Path

from publishing.settings import PublishSettings
from publishing.tabs import read_tab
from publishing.workbook import PublishError, PublishReport, WorkbookPublisher
from warehouse import connect


def publish_marts(settings: PublishSettings, database: Path | None = None) -> PublishReport:
    """Read every configured mart (read-only) and publish them as one batch of tabs."""
    if settings.spreadsheet_id:
        raise PublishError(
            "GOOGLE_SHEETS_SPREADSHEET_ID is set, but this version publishes only to the local "
            "workbook: unset it to publish to WORKBOOK_PATH."
        )
    con = connect(database, read_only=True)
    try:
        tabs = [read_tab(con, mart, tab) for mart, tab in settings.tabs]
    finally:
        con.close()
    return WorkbookPublisher(settings.workbook_path).publish(tabs)
