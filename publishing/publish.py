"""Publish the configured marts with the backend the settings call for: Google Sheets when a
spreadsheet id is set, else the local workbook."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from publishing import sheets
from publishing.settings import PublishSettings
from publishing.tabs import Tab, mart_shape, read_tab
from publishing.workbook import PublishReport, WorkbookPublisher
from warehouse import connect

_EMAIL_COLUMNS = re.compile(r"(^|_)email$")


def mask_email(value: Any) -> Any:
    """jane.doe@example.com -> j***@example.com (the domain kept for support questions)."""
    if not isinstance(value, str) or "@" not in value:
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def masked(tab: Tab) -> Tab:
    columns = [i for i, c in enumerate(tab.columns) if _EMAIL_COLUMNS.search(c)]
    if not columns:
        return tab
    rows = [
        tuple(mask_email(v) if i in columns else v for i, v in enumerate(row)) for row in tab.rows
    ]
    return Tab(name=tab.name, source=tab.source, columns=tab.columns, rows=rows)


def read_tabs(
    settings: PublishSettings,
    database: Path | None = None,
    check_shapes: Callable[[list[tuple[int, int]]], None] | None = None,
) -> list[Tab]:
    """Every configured mart as a tab, read in one read-only session. `check_shapes`, when
    given, sees every mart's (rows, columns) first and may refuse them before any value is
    read."""
    con = connect(database, read_only=True)
    try:
        if check_shapes is not None:
            check_shapes([mart_shape(con, mart) for mart, _ in settings.tabs])
        tabs = [read_tab(con, mart, tab) for mart, tab in settings.tabs]
    finally:
        con.close()
    return [masked(t) for t in tabs] if settings.mask_emails else tabs


def sheets_publisher(
    settings: PublishSettings, session: requests.Session | None = None
) -> sheets.SheetsPublisher:
    """The Sheets publisher for the configured spreadsheet; `session` replaces the
    service account's authorised session (a local stand-in of the API)."""
    account = ""
    if session is None:
        info = sheets.load_service_account(
            str(settings.service_account_file) if settings.service_account_file else None,
            settings.service_account_json,
        )
        account = f"The service account {info['client_email']}"
        session = sheets.authorized_session(info)
    http = sheets.SheetsHTTPClient(None, session)
    return sheets.SheetsPublisher(http, settings.spreadsheet_id or "", account)


def publish_marts(
    settings: PublishSettings,
    database: Path | None = None,
    *,
    source_run: str = "",
    session: requests.Session | None = None,
) -> PublishReport:
    """Read every configured mart (read-only) and publish them as one batch of tabs."""
    if settings.spreadsheet_id:
        publisher = sheets_publisher(settings, session)  # credentials checked before reading
        # Tabs too large for any spreadsheet are refused in a second, not after reading them.
        tabs = read_tabs(settings, database, check_shapes=sheets.check_cell_limit)
        return publisher.publish(tabs, source_run=source_run)
    return WorkbookPublisher(settings.workbook_path).publish(read_tabs(settings, database))
