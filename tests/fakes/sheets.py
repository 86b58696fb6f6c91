"""A fake Google Sheets API v4 on localhost: what the Sheets publisher uses, with Google's
semantics where they matter (atomic batchUpdate, values written over a grid, null values
skipped, the 10 million cell limit) and injectable failures (429, 5xx, 403, 404)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter

SHEETS_BASE = "https://sheets.googleapis.com"
CELL_LIMIT = 10_000_000


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    rows: int = 1000
    columns: int = 26
    frozen_rows: int = 0
    hidden: bool = False
    cells: dict[tuple[int, int], Any] = field(default_factory=dict)

    def values(self) -> list[list[Any]]:
        """The grid's values, trailing empty rows and columns trimmed (as the API reads)."""
        if not self.cells:
            return []
        height = max(r for r, _ in self.cells) + 1
        width = max(c for _, c in self.cells) + 1
        grid = [[self.cells.get((r, c), "") for c in range(width)] for r in range(height)]
        return grid


class FakeSheets:
    """The state of one fake account: spreadsheets by id, and a log of requests."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, list[Sheet]] = {}
        self.next_id = 100
        self.failures: list[int] = []  # statuses to answer the next requests with
        self.fail_from: tuple[int, int] | None = None  # (request number, status) from then on
        self.forbidden: set[str] = set()  # spreadsheets not shared with the caller
        self.log: list[tuple[str, str, int]] = []  # (method, path, payload bytes)
        self.lock = threading.Lock()

    def create(self, spreadsheet_id: str, titles: tuple[str, ...] = ("Sheet1",)) -> None:
        self.spreadsheets[spreadsheet_id] = []
        for title in titles:
            self._add(spreadsheet_id, {"title": title})

    def sheet(self, spreadsheet_id: str, title: str) -> Sheet:
        return next(s for s in self.spreadsheets[spreadsheet_id] if s.title == title)

    def titles(self, spreadsheet_id: str) -> list[str]:
        return [s.title for s in sorted(self.spreadsheets[spreadsheet_id], key=lambda s: s.index)]

    def writes(self) -> list[tuple[str, str, int]]:
        return [entry for entry in self.log if entry[0] != "GET"]

    # -- the API ---------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.log.append((method, path, len(body)))
            if self.fail_from and len(self.log) >= self.fail_from[0]:
                return self.fail_from[1], _error(self.fail_from[1], "injected failure")
            if self.failures:
                status = self.failures.pop(0)
                return status, _error(status, "injected failure")
            if path == "/token":  # Google's OAuth token endpoint: this key is not accepted
                return 400, {
                    "error": "invalid_grant",
                    "error_description": "Invalid JWT Signature.",
                }
            match = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", path)
            if not match:
                return 404, _error(404, "Requested entity was not found.")
            spreadsheet_id, rest = match.group(1), unquote(match.group(2))
            if spreadsheet_id in self.forbidden:
                return 403, _error(403, "The caller does not have permission")
            if spreadsheet_id not in self.spreadsheets:
                return 404, _error(404, "Requested entity was not found.")
            payload = json.loads(body) if body else {}
            try:
                if method == "GET" and rest == "":
                    return 200, self._metadata(spreadsheet_id)
                if method == "POST" and rest == ":batchUpdate":
                    return 200, self._batch_update(spreadsheet_id, payload)
                if method == "POST" and rest == "/values:batchUpdate":
                    return 200, self._values_batch_update(spreadsheet_id, payload)
                if method == "GET" and rest.startswith("/values/"):
                    return 200, self._values_get(spreadsheet_id, rest[len("/values/") :])
            except _BadRequestError as err:
                return 400, _error(400, str(err))
            return 404, _error(404, f"Unknown method {method} {rest}")

    def _metadata(self, spreadsheet_id: str) -> dict[str, Any]:
        sheets = sorted(self.spreadsheets[spreadsheet_id], key=lambda s: s.index)
        return {
            "spreadsheetId": spreadsheet_id,
            "properties": {"title": "Stripe marts"},
            "sheets": [{"properties": _properties(s)} for s in sheets],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit",
        }

    def _add(self, spreadsheet_id: str, props: dict[str, Any]) -> Sheet:
        sheets = self.spreadsheets[spreadsheet_id]
        if any(s.title == props["title"] for s in sheets):
            raise _BadRequestError(f'A sheet with the name "{props["title"]}" already exists.')
        grid = props.get("gridProperties", {})
        sheet = Sheet(
            sheet_id=props.get("sheetId", self.next_id),
            title=props["title"],
            index=props.get("index", len(sheets)),
            rows=grid.get("rowCount", 1000),
            columns=grid.get("columnCount", 26),
            frozen_rows=grid.get("frozenRowCount", 0),
            hidden=props.get("hidden", False),
        )
        self.next_id += 1
        for other in sheets:
            if other.index >= sheet.index:
                other.index += 1
        sheets.append(sheet)
        self._check_cells(spreadsheet_id)
        return sheet

    def _check_visible(self, spreadsheet_id: str) -> None:
        if all(s.hidden for s in self.spreadsheets[spreadsheet_id]):
            raise _BadRequestError(
                "Sorry, it is not possible to delete or hide all non-hidden sheets. "
                "At least one non-hidden sheet must remain."
            )

    def _check_cells(self, spreadsheet_id: str) -> None:
        total = sum(s.rows * s.columns for s in self.spreadsheets[spreadsheet_id])
        if total > CELL_LIMIT:
            raise _BadRequestError(
                f"This action would increase the number of cells in the workbook above the "
                f"limit of {CELL_LIMIT} cells."
            )

    def _batch_update(self, spreadsheet_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        # Atomic, like the real API: work on copies and keep them only if all succeed.
        saved = [
            Sheet(**{**vars(s), "cells": dict(s.cells)}) for s in self.spreadsheets[spreadsheet_id]
        ]
        replies = []
        try:
            for request in payload.get("requests", []):
                ((kind, spec),) = request.items()
                replies.append(self._apply(spreadsheet_id, kind, spec))
        except _BadRequestError:
            self.spreadsheets[spreadsheet_id] = saved
            raise
        return {"spreadsheetId": spreadsheet_id, "replies": replies}

    def _by_id(self, spreadsheet_id: str, sheet_id: int) -> Sheet:
        for sheet in self.spreadsheets[spreadsheet_id]:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise _BadRequestError(f"No grid with id: {sheet_id}")

    def _apply(self, spreadsheet_id: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        sheets = self.spreadsheets[spreadsheet_id]
        if kind == "addSheet":
            return {
                "addSheet": {
                    "properties": _properties(self._add(spreadsheet_id, spec["properties"]))
                }
            }
        if kind == "deleteSheet":
            sheet = self._by_id(spreadsheet_id, spec["sheetId"])
            sheets.remove(sheet)
            self._check_visible(spreadsheet_id)
            for other in sheets:
                if other.index > sheet.index:
                    other.index -= 1
            return {}
        if kind == "updateSheetProperties":
            props, fields = spec["properties"], spec["fields"].split(",")
            sheet = self._by_id(spreadsheet_id, props["sheetId"])
            if "title" in fields:
                if any(s.title == props["title"] and s is not sheet for s in sheets):
                    raise _BadRequestError(
                        f'A sheet with the name "{props["title"]}" already exists.'
                    )
                sheet.title = props["title"]
            if "index" in fields:
                target = min(props["index"], len(sheets) - 1)
                ordered = sorted((s for s in sheets if s is not sheet), key=lambda s: s.index)
                ordered.insert(target, sheet)
                for i, s in enumerate(ordered):
                    s.index = i
            if "hidden" in fields:
                sheet.hidden = props.get("hidden", False)
                self._check_visible(spreadsheet_id)
            grid = props.get("gridProperties", {})
            if "gridProperties.rowCount" in fields:
                sheet.rows = grid["rowCount"]
            if "gridProperties.columnCount" in fields:
                sheet.columns = grid["columnCount"]
            if "gridProperties.frozenRowCount" in fields:
                sheet.frozen_rows = grid["frozenRowCount"]
            self._check_cells(spreadsheet_id)
            return {}
        if kind == "updateCells":
            start = spec["start"]
            sheet = self._by_id(spreadsheet_id, start["sheetId"])
            for r, row in enumerate(spec["rows"]):
                for c, cell in enumerate(row.get("values", [])):
                    value = cell.get("userEnteredValue", {})
                    self._put(sheet, start.get("rowIndex", 0) + r, start.get("columnIndex", 0) + c,
                              next(iter(value.values()), ""))  # fmt: skip
            return {}
        raise _BadRequestError(f"Unsupported request {kind}")

    def _put(self, sheet: Sheet, row: int, column: int, value: Any) -> None:
        if row >= sheet.rows or column >= sheet.columns:
            raise _BadRequestError(
                f"Range ('{sheet.title}'!R{row + 1}C{column + 1}) exceeds grid limits. "
                f"Max rows: {sheet.rows}, max columns: {sheet.columns}"
            )
        if isinstance(value, str) and len(value) > 50_000:
            raise _BadRequestError(
                "Your input contains more than the maximum of 50000 characters in a single cell."
            )
        sheet.cells[(row, column)] = value

    def _values_batch_update(self, spreadsheet_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("valueInputOption") not in ("RAW", "USER_ENTERED"):
            raise _BadRequestError("Invalid valueInputOption")
        cells = 0
        for data in payload["data"]:
            title, row0, col0 = _parse_range(data["range"])
            sheet = next((s for s in self.spreadsheets[spreadsheet_id] if s.title == title), None)
            if sheet is None:
                raise _BadRequestError(f"Unable to parse range: {data['range']}")
            for r, row in enumerate(data["values"]):
                for c, value in enumerate(row):
                    if value is None:
                        continue  # Sheets leaves the cell as it was
                    self._put(sheet, row0 + r, col0 + c, value)
                    cells += 1
        return {"spreadsheetId": spreadsheet_id, "totalUpdatedCells": cells}

    def _values_get(self, spreadsheet_id: str, range_: str) -> dict[str, Any]:
        title, _, _ = _parse_range(range_)
        sheet = next((s for s in self.spreadsheets[spreadsheet_id] if s.title == title), None)
        if sheet is None:
            raise _BadRequestError(f"Unable to parse range: {range_}")
        return {"range": range_, "majorDimension": "ROWS", "values": sheet.values()}


class _BadRequestError(Exception):
    pass


def _error(status: int, message: str) -> dict[str, Any]:
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }
    return {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}}


def _properties(sheet: Sheet) -> dict[str, Any]:
    return {
        "sheetId": sheet.sheet_id,
        "title": sheet.title,
        "index": sheet.index,
        "sheetType": "GRID",
        "hidden": sheet.hidden,
        "gridProperties": {
            "rowCount": sheet.rows,
            "columnCount": sheet.columns,
            "frozenRowCount": sheet.frozen_rows,
        },
    }


def _parse_range(range_: str) -> tuple[str, int, int]:
    """'Tab ''x'''!B3 or Tab!B3:D9 -> (title, row index, column index) of the start."""
    sheet_part, _, cells = range_.rpartition("!")
    if not sheet_part:  # a sheet's name alone: the whole sheet
        sheet_part, cells = cells, "A1"
    if sheet_part.startswith("'") and sheet_part.endswith("'"):
        sheet_part = sheet_part[1:-1].replace("''", "'")
    start = cells.split(":")[0] or "A1"
    match = re.fullmatch(r"([A-Z]+)(\d+)", start)
    if not match:
        raise _BadRequestError(f"Unable to parse range: {range_}")
    column = 0
    for ch in match.group(1):
        column = column * 26 + ord(ch) - 64
    return sheet_part, int(match.group(2)) - 1, column - 1


class FakeSheetsServer:
    def __init__(self, state: FakeSheets) -> None:
        self.state = state
        handler = _handler(state)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeSheetsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def session(self) -> requests.Session:
        """A requests session that sends Google Sheets API calls to this server."""
        session = requests.Session()
        session.mount(SHEETS_BASE, _Redirect(SHEETS_BASE, self.url))
        return session


class _Redirect(HTTPAdapter):
    def __init__(self, prefix: str, target: str) -> None:
        super().__init__()
        self.prefix, self.target = prefix, target

    def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        request.url = self.target + request.url[len(self.prefix) :]
        return super().send(request, *args, **kwargs)


def _handler(state: FakeSheets) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = state.answer(method, urlsplit(self.path).path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
