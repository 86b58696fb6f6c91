"""Publishing to Google Sheets, against a fake Sheets API v4 on localhost."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
import requests

from publishing import sheets
from publishing.publish import mask_email, publish_marts, sheets_publisher
from publishing.settings import PublishSettings
from publishing.tabs import Tab
from publishing.workbook import PublishError
from tests.fakes.sheets import FakeSheets, FakeSheetsServer

SPREADSHEET = "1AbCdEfGhIjKlMnOpQrStUvWxYz"
WHEN = dt.datetime(2026, 10, 3, 14, 5, 9, tzinfo=dt.UTC)


@pytest.fixture
def fake():
    state = FakeSheets()
    state.create(SPREADSHEET, ("Notes",))
    with FakeSheetsServer(state) as server:
        state.server = server
        yield state


def publisher(fake: FakeSheets, retries: int = 3) -> sheets.SheetsPublisher:
    settings = PublishSettings(spreadsheet_id=SPREADSHEET)
    pub = sheets_publisher(settings, session=fake.server.session())
    pub.http.backoff_seconds = 0.001
    pub.http.max_retries = retries
    return pub


def charges_tab(amount: float = 12.5) -> Tab:
    return Tab(
        name="Charges",
        source="careportals_charges_export",
        columns=["charge_id", "amount", "datetime", "day", "refunded", "email"],
        rows=[
            ("ch_1", amount, WHEN, dt.date(2026, 10, 3), False, "ann@example.com"),
            ("ch_2", 1500, WHEN.replace(tzinfo=None), None, True, None),
        ],
    )


def revenue_tab() -> Tab:
    return Tab(
        name="Revenue monthly",
        source="revenue_monthly",
        columns=["month", "currency", "net"],
        rows=[(dt.date(2026, 9, 1), "usd", 1234.56), (dt.date(2026, 10, 1), "jpy", 98000)],
    )


def visible(fake: FakeSheets) -> list[str]:
    sheet_list = fake.spreadsheets[SPREADSHEET]
    return [s.title for s in sorted(sheet_list, key=lambda s: s.index) if not s.hidden]


def test_each_tab_holds_exactly_the_marts_typed_values(fake):
    report = publisher(fake).publish([charges_tab(), revenue_tab()], source_run="run-1")
    assert visible(fake) == ["Charges", "Revenue monthly", "Notes"]
    charges = fake.sheet(SPREADSHEET, "Charges")
    assert charges.values() == [
        ["charge_id", "amount", "datetime", "day", "refunded", "email"],
        ["ch_1", 12.5, "2026-10-03T14:05:09Z", "2026-10-03", False, "ann@example.com"],
        ["ch_2", 1500, "2026-10-03T14:05:09Z", "", True, ""],
    ]
    # Nulls are written as empty strings (a null would leave an old value behind).
    assert charges.cells[(2, 3)] == "" and charges.cells[(2, 5)] == ""
    assert (charges.rows, charges.columns, charges.frozen_rows) == (3, 6, 1)
    assert fake.sheet(SPREADSHEET, "Revenue monthly").values()[1] == ["2026-09-01", "usd", 1234.56]
    assert not any(t.endswith(sheets.STAGING_SUFFIX) for t in fake.titles(SPREADSHEET))
    assert report.rows_per_tab == {"Charges": 2, "Revenue monthly": 2}
    assert report.cells_written == 3 * 6 + 3 * 3
    assert report.tabs_skipped == []
    # metadata, staging batch, one values request, the swap
    assert report.requests_made == 4 == len(fake.log)
    meta = fake.sheet(SPREADSHEET, sheets.META_TAB)
    assert meta.hidden
    rows = meta.values()
    assert rows[0] == sheets.META_COLUMNS
    by_tab = {r[0]: dict(zip(sheets.META_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert by_tab["Charges"]["rows"] == 2 and by_tab["Charges"]["source_run"] == "run-1"
    assert by_tab["Charges"]["mart"] == "careportals_charges_export"
    assert len(by_tab["Revenue monthly"]["content_sha256"]) == 64


def test_unchanged_tabs_cost_no_write_and_a_changed_one_alone_is_rewritten(fake):
    publisher(fake).publish([charges_tab(), revenue_tab()])
    revenue_id = fake.sheet(SPREADSHEET, "Revenue monthly").sheet_id
    before = len(fake.log)
    again = publisher(fake).publish([charges_tab(), revenue_tab()])
    assert again.tabs_skipped == ["Charges", "Revenue monthly"]
    assert again.cells_written == 0 and again.requests_made == 2  # metadata and the tab read
    assert not [e for e in fake.log[before:] if e[0] != "GET"]
    changed = publisher(fake).publish([charges_tab(amount=13.0), revenue_tab()])
    assert changed.tabs_skipped == ["Revenue monthly"]
    assert fake.sheet(SPREADSHEET, "Charges").values()[1][1] == 13.0
    assert fake.sheet(SPREADSHEET, "Revenue monthly").sheet_id == revenue_id


def test_a_deleted_tab_is_published_again(fake):
    publisher(fake).publish([charges_tab(), revenue_tab()])
    gone = fake.sheet(SPREADSHEET, "Charges")
    fake.spreadsheets[SPREADSHEET].remove(gone)
    report = publisher(fake).publish([charges_tab(), revenue_tab()])
    assert report.tabs_skipped == ["Revenue monthly"]
    assert fake.sheet(SPREADSHEET, "Charges").values() == gone.values()


def test_429_and_5xx_are_retried_with_backoff(fake):
    fake.failures = [429, 503, 500, 502]
    report = publisher(fake, retries=4).publish([charges_tab()])
    assert report.requests_made == 4 + 4
    assert fake.sheet(SPREADSHEET, "Charges").values()[1][0] == "ch_1"


def test_a_quota_that_stays_exhausted_is_a_clear_error(fake):
    fake.failures = [429] * 10
    with pytest.raises(PublishError, match="quota"):
        publisher(fake, retries=2).publish([charges_tab()])


def test_readers_never_see_a_half_written_tab(fake):
    publisher(fake).publish([charges_tab(), revenue_tab()])
    old = fake.sheet(SPREADSHEET, "Charges").values()
    fake.fail_from = (len(fake.log) + 4, 500)  # the values request of the next publish fails
    with pytest.raises(PublishError):
        publisher(fake, retries=1).publish([charges_tab(amount=99.0), revenue_tab()])
    assert visible(fake) == ["Charges", "Revenue monthly", "Notes"]
    assert fake.sheet(SPREADSHEET, "Charges").values() == old
    fake.fail_from = None
    publisher(fake).publish([charges_tab(amount=99.0), revenue_tab()])
    assert fake.sheet(SPREADSHEET, "Charges").values()[1][1] == 99.0
    assert not any(t.endswith(sheets.STAGING_SUFFIX) for t in fake.titles(SPREADSHEET))


def test_big_tabs_go_in_requests_of_about_2_mb(fake, monkeypatch):
    monkeypatch.setattr(sheets, "MAX_REQUEST_BYTES", 4_000)
    rows = [(f"ch_{i:05d}", i * 1.25, WHEN, None, False, f"p{i}@example.com") for i in range(400)]
    tab = Tab(name="Charges", source="x", columns=charges_tab().columns, rows=rows)
    report = publisher(fake).publish([tab, revenue_tab()])
    value_requests = [e for e in fake.log if e[1].endswith("/values:batchUpdate")]
    assert len(value_requests) > 5
    assert all(size <= 4_000 + 500 for _, _, size in value_requests)
    values = fake.sheet(SPREADSHEET, "Charges").values()
    assert len(values) == 401 and values[400][0] == "ch_00399" and values[400][1] == 399 * 1.25
    assert report.cells_written == 401 * 6 + 3 * 3


def test_the_cell_limits_are_checked_before_anything_is_written(fake):
    fake.spreadsheets[SPREADSHEET][0].rows = 9_999_990
    fake.spreadsheets[SPREADSHEET][0].columns = 1
    with pytest.raises(PublishError, match="10,000,000"):
        publisher(fake).publish([charges_tab()])
    long_text = Tab(name="Notes2", source="x", columns=["note"], rows=[("x" * 50_001,)])
    with pytest.raises(PublishError, match=r"Notes2.*row 2.*note.*50,000"):
        publisher(fake).publish([long_text])
    assert not [e for e in fake.log if e[0] != "GET"]


def test_marts_too_large_for_a_spreadsheet_are_refused_before_they_are_read(
    fake, tmp_path, monkeypatch
):
    database = tmp_path / "w.duckdb"
    con = duckdb.connect(str(database))
    con.execute("create schema marts")
    # 1,000 rows of 3 columns and a header: 3,003 cells; one row of one column: 2 (a tab
    # keeps an empty row under its header).
    con.execute("create table marts.big as select range as id, 1 as a, 2 as b from range(1000)")
    con.execute("create table marts.small as select 1 as id")
    con.close()
    monkeypatch.setattr(sheets, "CELL_LIMIT", 3_004)
    read: list[str] = []
    monkeypatch.setattr("publishing.publish.read_tab", lambda con, mart, tab: read.append(mart))
    settings = PublishSettings(
        tabs=(("big", "Big"), ("small", "Small")), spreadsheet_id=SPREADSHEET
    )
    with pytest.raises(PublishError, match=r"3,005 cells; Google allows 3,004 "):
        publish_marts(settings, database, session=fake.server.session())
    assert read == [] and fake.log == []


def test_an_unshared_or_unknown_spreadsheet_names_the_fix(fake):
    fake.forbidden.add(SPREADSHEET)
    with pytest.raises(PublishError, match="Share"):
        publisher(fake).publish([charges_tab()])
    settings = PublishSettings(spreadsheet_id="nope")
    pub = sheets_publisher(settings, session=fake.server.session())
    with pytest.raises(PublishError, match="GOOGLE_SHEETS_SPREADSHEET_ID"):
        pub.publish([charges_tab()])


def test_credentials_are_checked_without_printing_them(tmp_path):
    with pytest.raises(PublishError, match="GOOGLE_SERVICE_ACCOUNT_FILE"):
        sheets.load_service_account(None, None)
    with pytest.raises(PublishError, match="Cannot read"):
        sheets.load_service_account(str(tmp_path / "missing.json"), None)
    with pytest.raises(PublishError, match="not valid JSON"):
        sheets.load_service_account(None, "{not json")
    secret = "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n"
    key = {"type": "authorized_user", "private_key": secret}
    with pytest.raises(PublishError, match="service_account") as err:
        sheets.load_service_account(None, json.dumps(key))
    assert "SECRET" not in str(err.value)
    key = {"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com",
           "private_key": secret, "token_uri": "https://oauth2.googleapis.com/token"}  # fmt: skip
    with pytest.raises(PublishError, match="private key") as err:
        sheets.authorized_session(key)
    assert "SECRET" not in str(err.value)


def test_publish_marts_reads_the_configured_marts_masks_emails_and_leaves_out_built_at(
    fake, tmp_path
):
    database = tmp_path / "w.duckdb"
    con = duckdb.connect(str(database))
    con.execute("create schema marts")
    # `built_at`: when an incremental mart last computed the row, not for the tab.
    con.execute(
        "create table marts.dim_customers as select 'cus_1' as customer_id, "
        "'jane.doe@example.com' as email, 12.50::decimal(38, 2) as lifetime_gross, "
        "now() as built_at"
    )
    con.close()
    settings = PublishSettings(
        tabs=(("dim_customers", "Customers"),), spreadsheet_id=SPREADSHEET, mask_emails=True
    )
    report = publish_marts(settings, database, source_run="r", session=fake.server.session())
    assert fake.sheet(SPREADSHEET, "Customers").values() == [
        ["customer_id", "email", "lifetime_gross"],
        ["cus_1", "j***@example.com", 12.5],
    ]
    assert report.destination == f"https://docs.google.com/spreadsheets/d/{SPREADSHEET}/edit"
    assert mask_email(None) is None and mask_email("nomail") == "nomail"


def test_requests_are_paced_under_the_per_minute_quota(fake, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(sheets.time, "sleep", slept.append)
    pub = publisher(fake)
    pub.http.requests_per_minute = 2
    pub.publish([charges_tab()])
    assert len(slept) == 2 and all(0 < s <= 60 for s in slept)  # requests 3 and 4 waited


def test_the_sink_asset_publishes_to_sheets_and_reports_metadata(fake, tmp_path, monkeypatch):
    import dagster as dg

    database = tmp_path / "w.duckdb"
    con = duckdb.connect(str(database))
    con.execute("create schema marts")
    con.execute("create table marts.mrr_monthly as select 'usd' as currency, 4000 as mrr_minor")
    con.close()
    key = {"type": "service_account", "client_email": "sink@p.iam.gserviceaccount.com",
           "private_key": "unused", "token_uri": "https://oauth2.googleapis.com/token"}  # fmt: skip
    monkeypatch.setenv("DUCKDB_PATH", str(database))
    monkeypatch.setenv("GOOGLE_SHEETS_SPREADSHEET_ID", SPREADSHEET)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_JSON", json.dumps(key))
    monkeypatch.setenv("PUBLISH_MARTS", "mrr_monthly:MRR monthly")
    monkeypatch.setattr(sheets, "authorized_session", lambda info: fake.server.session())
    from orchestration.definitions import published_marts

    result = dg.materialize([published_marts], instance=dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = result.asset_materializations_for_node("published_marts")[0].metadata
    assert metadata["destination"].value.endswith(f"/d/{SPREADSHEET}/edit")
    assert metadata["rows_per_tab"].value == {"MRR monthly": 1}
    assert metadata["cells_written"].value == 4
    assert metadata["requests_made"].value == 4
    assert metadata["tabs_skipped"].value == []
    assert fake.sheet(SPREADSHEET, "MRR monthly").values() == [
        ["currency", "mrr_minor"],
        ["usd", 4000],
    ]
    assert "unused" not in json.dumps({k: str(v.value) for k, v in metadata.items()})


def test_a_key_google_rejects_is_a_clear_error_without_the_key(fake, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = {"type": "service_account", "client_email": "sink@p.iam.gserviceaccount.com",
           "private_key": pem, "private_key_id": "k1",
           "token_uri": f"{fake.server.url}/token"}  # fmt: skip
    settings = PublishSettings(spreadsheet_id=SPREADSHEET, service_account_json=json.dumps(key))
    pub = sheets_publisher(settings)
    with pytest.raises(PublishError, match="did not accept the service account") as err:
        pub.publish([charges_tab()])
    assert pem.splitlines()[1] not in str(err.value)
    assert not [e for e in fake.log if e[1].startswith("/v4/")]


def test_a_spreadsheet_holding_only_published_tabs_is_republished(fake):
    publisher(fake).publish([charges_tab()])
    notes = fake.sheet(SPREADSHEET, "Notes")
    fake.spreadsheets[SPREADSHEET].remove(notes)  # only Charges (and hidden ones) remain
    publisher(fake).publish([charges_tab(amount=7.0)])
    assert visible(fake) == ["Charges"]
    assert fake.sheet(SPREADSHEET, "Charges").values()[1][1] == 7.0


def test_an_unreachable_or_garbled_sheets_api_is_a_clear_error(fake, free_port):
    from tests.fakes.sheets import SHEETS_BASE, _Redirect

    session = fake.server.session()
    session.mount(SHEETS_BASE, _Redirect(SHEETS_BASE, f"http://127.0.0.1:{free_port}"))
    pub = sheets_publisher(PublishSettings(spreadsheet_id=SPREADSHEET), session=session)
    pub.http.backoff_seconds = 0.001
    pub.http.max_retries = 2
    with pytest.raises(PublishError, match="did not answer after 3 attempts"):
        pub.publish([charges_tab()])

    class HtmlPage(requests.adapters.BaseAdapter):  # a proxy's page where JSON belongs
        def send(self, request, **kwargs):
            response = requests.Response()
            response.status_code, response._content, response.url = 200, b"<html>", request.url
            return response

        def close(self):
            pass

    garbled = requests.Session()
    garbled.mount(SHEETS_BASE, HtmlPage())
    pub = sheets_publisher(PublishSettings(spreadsheet_id=SPREADSHEET), session=garbled)
    with pytest.raises(PublishError, match="unexpected"):
        pub.publish([charges_tab()])
