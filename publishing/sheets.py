"""The Google Sheets backend: each mart to its tab through gspread, within Google's limits.

A publish never leaves a tab half-written. New content goes to a staging tab; one atomic
batchUpdate then deletes the old tab and renames the staging tab into its place, together
with the bookkeeping tab (`_stripe_elt`: a content hash, row count, time and source run per
tab). A tab whose content hash has not changed costs no request at all. Values go in
requests of about 2 MB; 429 and 5xx answers are retried with backoff, and requests are paced
to stay under the per-minute quota.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
import requests
from google.auth.exceptions import GoogleAuthError
from gspread.exceptions import APIError
from gspread.http_client import HTTPClient

from publishing.tabs import Tab
from publishing.workbook import PublishError, PublishReport

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
META_TAB = "_stripe_elt"
META_COLUMNS = ["tab", "mart", "content_sha256", "rows", "columns", "published_at", "source_run"]
STAGING_SUFFIX = " (publishing)"
MAX_REQUEST_BYTES = 2_000_000
CELL_LIMIT = 10_000_000
CELL_CHARS = 50_000
RETRIED_STATUSES = {429, 500, 502, 503, 504}


class SheetsHTTPClient(HTTPClient):
    """gspread's HTTP client, counting its requests, pacing them under the quota and retrying
    429, 5xx and dropped connections with exponential backoff (or the server's Retry-After)."""

    max_retries = 6
    backoff_seconds = 1.0
    max_backoff_seconds = 64.0
    requests_per_minute = 60

    def __init__(self, auth: Any, session: requests.Session | None = None) -> None:
        super().__init__(auth, session)
        self.requests_made = 0
        self.recent: deque[float] = deque()

    def _pace(self) -> None:
        now = time.monotonic()
        while self.recent and now - self.recent[0] >= 60:
            self.recent.popleft()
        if len(self.recent) >= self.requests_per_minute:
            time.sleep(60 - (now - self.recent[0]))
        self.recent.append(time.monotonic())

    def _wait(self, attempt: int, response: requests.Response | None) -> None:
        delay = min(self.backoff_seconds * 2**attempt, self.max_backoff_seconds)
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), self.max_backoff_seconds)
        time.sleep(delay)

    def request(self, method: str, endpoint: str, params=None, data=None, json=None,
                files=None, headers=None) -> requests.Response:  # type: ignore[override]  # fmt: skip
        for attempt in range(self.max_retries + 1):
            self._pace()
            self.requests_made += 1
            try:
                response = self.session.request(
                    method=method, url=endpoint, json=json, params=params, data=data,
                    files=files, headers=headers, timeout=self.timeout or 60,
                )  # fmt: skip
            except (requests.ConnectionError, requests.Timeout) as err:
                if attempt == self.max_retries:
                    raise PublishError(
                        f"Google Sheets did not answer after {attempt + 1} attempts "
                        f"({type(err).__name__}): check the network and try again."
                    ) from None
                self._wait(attempt, None)
                continue
            except GoogleAuthError as err:
                raise PublishError(
                    f"Google did not accept the service account's credentials ({err}): check "
                    "GOOGLE_SERVICE_ACCOUNT_FILE (or GOOGLE_SERVICE_ACCOUNT_JSON) holds a "
                    "current key of the service account."
                ) from None
            if response.ok:
                return response
            if response.status_code in RETRIED_STATUSES and attempt < self.max_retries:
                self._wait(attempt, response)
                continue
            raise APIError(response)
        raise AssertionError("unreachable")


def grid_rows(rows: int) -> int:
    """The grid rows a tab of `rows` rows and a header takes."""
    # Sheets will not freeze every row of a sheet: keep one empty row under the header.
    return max(2, rows + 1)


def grid_cells(rows: int, columns: int) -> int:
    """The cells a tab of `rows` rows (and a header) and `columns` columns takes."""
    return grid_rows(rows) * max(1, columns)


def check_cell_limit(shapes: list[tuple[int, int]]) -> None:
    """Refuse tabs of these (rows, columns) that no spreadsheet could hold, before their
    values are read."""
    cells = sum(grid_cells(rows, columns) for rows, columns in shapes)
    if cells > CELL_LIMIT:
        raise PublishError(
            f"The tabs would need {cells:,} cells; Google allows {CELL_LIMIT:,} in a "
            "spreadsheet. Publish fewer or aggregated marts (PUBLISH_MARTS), or another "
            "spreadsheet. Nothing was written."
        )


@dataclass
class _Prepared:
    tab: Tab
    values: list[list[Any]]
    digest: str

    @property
    def width(self) -> int:
        return max(1, len(self.tab.columns))

    @property
    def height(self) -> int:
        return grid_rows(len(self.tab.rows))


def spreadsheet_url(spreadsheet_id: str) -> str:
    return f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}/edit"


def sheet_value(value: Any) -> Any:
    """A value as Sheets should hold it: ISO 8601 UTC text for times, numbers as numbers,
    and "" for null (Sheets skips a null, which would leave a stale value behind)."""
    if value is None:
        return ""
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else ""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "__float__"):
        return float(value)
    return str(value)


def _quote(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


class SheetsPublisher:
    """Publishes tabs to one spreadsheet through a gspread HTTP client."""

    def __init__(self, http: SheetsHTTPClient, spreadsheet_id: str, account: str = "") -> None:
        self.http = http
        self.spreadsheet_id = spreadsheet_id
        self.account = account or "the service account"

    @property
    def url(self) -> str:
        return spreadsheet_url(self.spreadsheet_id)

    def publish(self, tabs: list[Tab], source_run: str = "") -> PublishReport:
        try:
            return self._publish(tabs, source_run)
        except APIError as err:
            raise self._explain(err) from None
        except (ValueError, KeyError, TypeError) as err:
            # An answer that is not the JSON the Sheets API documents (a proxy's error page).
            raise PublishError(
                f"Google Sheets answered something unexpected ({type(err).__name__}): nothing "
                "was swapped in; try again, and check any proxy between here and Google."
            ) from None

    def _explain(self, err: APIError) -> PublishError:
        code = err.response.status_code
        message = err.error.get("message", "") if isinstance(err.error, dict) else str(err)
        if code == 401:
            return PublishError(
                "Google rejected the credentials: check GOOGLE_SERVICE_ACCOUNT_FILE (or "
                "GOOGLE_SERVICE_ACCOUNT_JSON) holds a current service-account key."
            )
        if code == 403:
            return PublishError(
                f"{self.account} may not edit spreadsheet {self.spreadsheet_id}: open the sheet, "
                "Share, and add the service account's email as an Editor."
            )
        if code == 404:
            return PublishError(
                f"No spreadsheet {self.spreadsheet_id}: check GOOGLE_SHEETS_SPREADSHEET_ID (the "
                "id is the long part of the sheet's URL after /d/)."
            )
        if code == 429:
            return PublishError(
                "Google Sheets' quota is still exhausted after retrying with backoff: publish "
                "less often (STRIPE_LOAD_CRON) or fewer marts (PUBLISH_MARTS)."
            )
        return PublishError(f"Google Sheets refused the publish ({code}): {message}")

    # -- the steps -------------------------------------------------------------------------

    def _publish(self, tabs: list[Tab], source_run: str) -> PublishReport:
        metadata = self.http.fetch_sheet_metadata(self.spreadsheet_id)
        sheets = {s["properties"]["title"]: s["properties"] for s in metadata.get("sheets", [])}
        previous = self._read_bookkeeping(sheets)
        prepared = [self._prepare(tab) for tab in tabs]
        names = [p.tab.name for p in prepared]
        if len(set(names)) != len(names) or META_TAB in names:
            raise PublishError(f"Tab names must be unique and not {META_TAB!r}: {names}")
        # A tab is rewritten when its content changed, or when someone deleted it.
        changed = [
            p
            for p in prepared
            if p.tab.name not in sheets
            or previous.get(p.tab.name, {}).get("content_sha256") != p.digest
        ]
        report = PublishReport(destination=self.url)
        report.rows_per_tab = {p.tab.name: len(p.tab.rows) for p in prepared}
        report.tabs_skipped = [p.tab.name for p in prepared if p not in changed]
        if not changed:
            report.requests_made = self.http.requests_made
            return report

        leftovers = [props for title, props in sheets.items() if title.endswith(STAGING_SUFFIX)]
        standing = sum(
            props["gridProperties"]["rowCount"] * props["gridProperties"]["columnCount"]
            for title, props in sheets.items()
            if not title.endswith(STAGING_SUFFIX)
        )
        incoming = sum(p.height * p.width for p in changed)
        if standing + incoming > CELL_LIMIT:
            raise PublishError(
                f"Publishing would need {standing + incoming:,} cells in the spreadsheet while "
                f"the new tabs are written next to the old ones; Google allows {CELL_LIMIT:,}. "
                "Publish fewer or aggregated marts (PUBLISH_MARTS), or another spreadsheet."
            )

        # 1. Staging tabs (and the bookkeeping tab), clearing what a failed publish left.
        requests_: list[dict[str, Any]] = [
            {"deleteSheet": {"sheetId": props["sheetId"]}} for props in leftovers
        ]
        for p in changed:
            requests_.append({"addSheet": {"properties": {
                "title": p.tab.name + STAGING_SUFFIX,
                "hidden": True,
                "gridProperties": {"rowCount": p.height, "columnCount": p.width,
                                   "frozenRowCount": 1},
            }}})  # fmt: skip
        if META_TAB not in sheets:
            requests_.append({"addSheet": {"properties": {
                "title": META_TAB, "hidden": True,
                "gridProperties": {"rowCount": 2, "columnCount": len(META_COLUMNS)},
            }}})  # fmt: skip
        replies = self.http.batch_update(self.spreadsheet_id, {"requests": requests_})["replies"]
        added = {
            r["addSheet"]["properties"]["title"]: r["addSheet"]["properties"]["sheetId"]
            for r in replies
            if r and "addSheet" in r
        }
        meta_id = added.get(META_TAB) or sheets[META_TAB]["sheetId"]

        # 2. The values, about 2 MB a request.
        for body in self._value_requests(changed):
            self.http.values_batch_update(self.spreadsheet_id, body)
            report.cells_written += sum(len(r) for d in body["data"] for r in d["values"])

        # 3. One atomic swap: old tabs out, staging tabs renamed in, bookkeeping updated.
        published_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        # Each staging tab is shown before its old tab goes: Sheets refuses to leave no
        # visible sheet, even for a moment inside one batch.
        swap: list[dict[str, Any]] = []
        for index, p in enumerate(prepared):
            if p in changed:
                staging_id = added[p.tab.name + STAGING_SUFFIX]
                swap.append({"updateSheetProperties": {
                    "properties": {"sheetId": staging_id, "hidden": False},
                    "fields": "hidden",
                }})  # fmt: skip
                if p.tab.name in sheets:
                    swap.append({"deleteSheet": {"sheetId": sheets[p.tab.name]["sheetId"]}})
                swap.append({"updateSheetProperties": {
                    "properties": {"sheetId": staging_id, "title": p.tab.name, "index": index},
                    "fields": "title,index",
                }})  # fmt: skip
                previous[p.tab.name] = {
                    "tab": p.tab.name, "mart": p.tab.source, "content_sha256": p.digest,
                    "rows": len(p.tab.rows), "columns": len(p.tab.columns),
                    "published_at": published_at, "source_run": source_run,
                }  # fmt: skip
        meta_rows = [META_COLUMNS] + [
            [sheet_value(entry.get(c)) for c in META_COLUMNS] for entry in previous.values()
        ]
        swap.append({"updateSheetProperties": {
            "properties": {"sheetId": meta_id, "gridProperties": {
                "rowCount": len(meta_rows), "columnCount": len(META_COLUMNS)}},
            "fields": "gridProperties.rowCount,gridProperties.columnCount",
        }})  # fmt: skip
        swap.append({"updateCells": {
            "start": {"sheetId": meta_id, "rowIndex": 0, "columnIndex": 0},
            "rows": [{"values": [_cell_data(v) for v in row]} for row in meta_rows],
            "fields": "userEnteredValue",
        }})  # fmt: skip
        self.http.batch_update(self.spreadsheet_id, {"requests": swap})
        report.requests_made = self.http.requests_made
        return report

    def _read_bookkeeping(self, sheets: dict[str, Any]) -> dict[str, dict[str, Any]]:
        if META_TAB not in sheets:
            return {}
        values = self.http.values_get(self.spreadsheet_id, _quote(META_TAB)).get("values", [])
        if not values or values[0][: len(META_COLUMNS)] != META_COLUMNS:
            return {}
        entries = {}
        for row in values[1:]:
            entry = dict(zip(META_COLUMNS, row + [""] * len(META_COLUMNS), strict=False))
            if entry["tab"]:
                entries[entry["tab"]] = entry
        return entries

    def _prepare(self, tab: Tab) -> _Prepared:
        values = [list(tab.columns)] + [[sheet_value(v) for v in row] for row in tab.rows]
        for r, row in enumerate(values):
            for c, value in enumerate(row):
                if isinstance(value, str) and len(value) > CELL_CHARS:
                    raise PublishError(
                        f"Tab {tab.name!r}, row {r + 1}, column {tab.columns[c]!r} holds "
                        f"{len(value):,} characters; a Sheets cell holds at most {CELL_CHARS:,}."
                    )
        digest = hashlib.sha256(orjson.dumps(values)).hexdigest()
        return _Prepared(tab=tab, values=values, digest=digest)

    def _value_requests(self, changed: list[_Prepared]):
        """values:batchUpdate bodies of at most about MAX_REQUEST_BYTES each, whole tabs
        packed together, big tabs split by rows."""
        data: list[dict[str, Any]] = []
        size = 0
        for p in changed:
            title = _quote(p.tab.name + STAGING_SUFFIX)
            start, chunk, chunk_size = 0, [], 0
            for i, row in enumerate(p.values):
                row_size = len(orjson.dumps(row)) + 1
                if chunk and size + chunk_size + row_size > MAX_REQUEST_BYTES:
                    data.append({"range": f"{title}!A{start + 1}", "values": chunk})
                    yield {"valueInputOption": "RAW", "data": data}
                    data, size, start, chunk, chunk_size = [], 0, i, [], 0
                chunk.append(row)
                chunk_size += row_size
            if chunk:
                data.append({"range": f"{title}!A{start + 1}", "values": chunk})
                size += chunk_size
        if data:
            yield {"valueInputOption": "RAW", "data": data}


def _cell_data(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, int | float):
        return {"userEnteredValue": {"numberValue": value}}
    return {"userEnteredValue": {"stringValue": str(value)}}


def load_service_account(path: str | None, inline_json: str | None) -> dict[str, Any]:
    """The service-account key, from a file or an environment variable's JSON."""
    if inline_json:
        source = "GOOGLE_SERVICE_ACCOUNT_JSON"
        text = inline_json
    elif path:
        source = f"GOOGLE_SERVICE_ACCOUNT_FILE ({path})"
        try:
            with open(path) as f:
                text = f.read()
        except OSError as err:
            raise PublishError(f"Cannot read {source}: {err.strerror}.") from None
    else:
        raise PublishError(
            "GOOGLE_SHEETS_SPREADSHEET_ID is set but no credentials are: set "
            "GOOGLE_SERVICE_ACCOUNT_FILE (a service-account key file) or "
            "GOOGLE_SERVICE_ACCOUNT_JSON, or unset the spreadsheet id to publish to the "
            "local workbook."
        )
    try:
        info = json.loads(text)
    except ValueError:
        raise PublishError(f"{source} is not valid JSON: use the key file Google gave.") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise PublishError(
            f'{source} is not a service-account key (its "type" must be "service_account").'
        )
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise PublishError(f"{source} lacks {', '.join(missing)}: download a new key.")
    return info


def authorized_session(info: dict[str, Any]) -> requests.Session:
    """A requests session that signs calls with the service account's OAuth token."""
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2.service_account import Credentials

    try:
        credentials = Credentials.from_service_account_info(info, scopes=SCOPES)
    except (ValueError, GoogleAuthError):
        raise PublishError(
            "The service-account key cannot be used (its private key does not parse): "
            "download a new key."
        ) from None
    return AuthorizedSession(credentials)
