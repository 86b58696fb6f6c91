"""The Stripe dlt source on its own: list selection, empty tables, cursors, full re-reads."""

from __future__ import annotations

from typing import NamedTuple

import duckdb
import httpx
import pytest

from ingestion.pipelines import (
    LOADER_FILE_FORMAT,
    lists_to_append,
    run_stripe_account,
    stripe_pipeline,
)
from ingestion.settings import Secret, StripeSettings
from ingestion.stripe_api import StripeApi, StripeApiError
from ingestion.stripe_source import STRIPE_LISTS, stripe_source
from sandbox.server import SANDBOX_API_KEY
from tests.conftest import held_by_another_process
from warehouse import WarehouseLockedError


class Call(NamedTuple):
    path: str
    params: dict


def counting_api(url: str, calls: list[Call]) -> StripeApi:
    """A reader of the sandbox that records each request it sends: its path and query."""
    api = StripeApi(Secret(SANDBOX_API_KEY), url)
    send, send_ahead = api._send, api._send_ahead

    def recorded(path: str, params: dict | None):
        calls.append(Call(path, dict(params or {})))
        return send(path, params)

    def recorded_ahead(path: str, params: dict):  # the next page, asked for ahead
        calls.append(Call(path, dict(params)))
        return send_ahead(path, params)

    api._send, api._send_ahead = recorded, recorded_ahead
    return api


def raw_counts(database) -> dict[str, int]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return {
            name: con.execute(f"select count(*) from raw_stripe.{name}").fetchone()[0]
            for name in STRIPE_LISTS
        }
    finally:
        con.close()


def load(tmp_path, sandbox, calls, **source_args):
    api = counting_api(sandbox.url, calls)
    pipeline = stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt")
    pipeline.run(stripe_source(lambda: api, **source_args), loader_file_format=LOADER_FILE_FORMAT)


def test_lists_not_read_are_kept_as_empty_tables(tmp_path, sandbox, truth):
    calls: list[Call] = []
    load(tmp_path, sandbox, calls, lists=("customers",))
    counts = raw_counts(tmp_path / "w.duckdb")
    assert counts["customers"] == truth["counts"]["customers"]
    assert all(n == 0 for name, n in counts.items() if name != "customers")
    # The events come after the lists, from when the customers were read: a change made
    # while the load ran is not missed.
    assert {c.path for c in calls} == {"/v1/account", "/v1/customers", "/v1/events"}


def test_incremental_runs_read_from_the_cursor_and_full_refresh_from_the_start(
    tmp_path, sandbox, truth
):
    first: list[Call] = []
    load(tmp_path, sandbox, first, lists=("charges",))
    again: list[Call] = []
    load(tmp_path, sandbox, again, lists=("charges",))
    pages = [c for c in again if c.path == "/v1/charges"]
    assert len(pages) == 1 and "created[gte]" in pages[0].params
    everything: list[Call] = []
    load(tmp_path, sandbox, everything, lists=("charges",), from_start=True)
    pages = [c for c in everything if c.path == "/v1/charges"]
    assert len(pages) == len([c for c in first if c.path == "/v1/charges"]) > 1
    assert all("created[gte]" not in c.params for c in pages)
    assert raw_counts(tmp_path / "w.duckdb")["charges"] == truth["counts"]["charges"]
    # Three loads done: dlt kept no loaded package's files (only each package's state).
    loaded = tmp_path / "dlt" / "stripe" / "load" / "loaded"
    assert len(list(loaded.iterdir())) == 3
    assert not [f for f in loaded.rglob("*") if f.suffix == ".parquet"]


def _no_account_endpoint(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/account":
        return httpx.Response(404, json={"error": {"type": "invalid_request_error"}})
    return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})


def test_a_server_without_v1_account_needs_stripe_account_id():
    api = StripeApi(
        Secret("sk_test_x"), "http://fake", transport=httpx.MockTransport(_no_account_endpoint)
    )
    with pytest.raises(StripeApiError, match="STRIPE_ACCOUNT_ID"):
        api.account()
    api = StripeApi(
        Secret("sk_test_x"), "http://fake", account_id="acct_local",
        transport=httpx.MockTransport(_no_account_endpoint),
    )  # fmt: skip
    assert api.account_id == "acct_local"


def test_an_object_a_shifted_page_repeats_is_staged_once():
    """The merge is told each list's staged rows are unique: a read keeps each id once."""
    from ingestion.stripe_source import _batches

    pages = iter(
        [
            [{"id": "ch_2", "created": 20}, {"id": "ch_1", "created": 10}],
            [{"id": "ch_1", "created": 10}, {"id": "ch_0", "created": 5}],
        ]
    )
    progress: dict[str, int] = {}
    (table,) = list(_batches(pages, "acct_1", progress))
    assert table.column("id").to_pylist() == ["ch_2", "ch_1", "ch_0"]
    assert progress["max_created"] == 20


@pytest.mark.parametrize(
    "obj", [{"id": "ch_1"}, {"id": "ch_1", "created": None}, {"created": 5}, "ch_1"]
)
def test_an_object_without_its_key_is_a_clear_error(obj):
    from ingestion.stripe_source import _batches

    good = {"id": "ch_2", "created": 20}
    with pytest.raises(StripeApiError, match="without a string id and an integer created"):
        list(_batches(iter([[good, obj]]), "acct_1", {}))


def test_the_collector_is_paused_for_a_page_and_left_as_it_was():
    """The cyclic collector is off while a page is read and taken apart, on again where the
    batches are handed to dlt, and on after an error; one turned off already stays off."""
    import gc

    from ingestion.stripe_source import BATCH_ROWS, _batches

    seen: list[bool] = []

    def pages(fail: bool):
        for n in range(3):
            seen.append(gc.isenabled())  # as the reader parses the page
            if fail and n == 2:
                raise StripeApiError("the server went away")
            yield [{"id": f"ch_{n}_{i}", "created": n} for i in range(BATCH_ROWS)]

    assert gc.isenabled()
    for table in _batches(pages(fail=False), "acct_1", {}):
        assert gc.isenabled() and table.num_rows == BATCH_ROWS
    assert seen == [False, False, False] and gc.isenabled()
    with pytest.raises(StripeApiError, match="went away"):
        list(_batches(pages(fail=True), "acct_1", {}))
    assert gc.isenabled()
    gc.disable()
    try:
        seen.clear()
        list(_batches(pages(fail=False), "acct_1", {}))
        assert seen == [False, False, False] and not gc.isenabled()
    finally:
        gc.enable()


def test_every_raw_stripe_table_merges_on_its_key_with_created(tmp_path):
    """An object's `created` never changes for its id: in the merge key it keeps the same
    rows and lets the merge's delete skip the row groups of other seconds (`RAW_KEY`)."""
    from ingestion.events import RAW_KEY
    from ingestion.landing import webhook_landing_source

    resources = [
        *stripe_source(lambda: None).resources.values(),
        *webhook_landing_source(tmp_path, "acct_1").resources.values(),
    ]
    assert len(resources) == len(STRIPE_LISTS) + 2
    for resource in resources:
        columns = resource.compute_table_schema()["columns"]
        keys = tuple(name for name, hints in columns.items() if hints.get("primary_key"))
        assert keys == RAW_KEY, resource.name


def test_a_first_load_appends_and_a_table_holding_the_account_is_merged(tmp_path, sandbox, truth):
    """A list never read for the account, whose table has none of its rows, is appended
    (nothing to replace); a list the pipeline's state forgot but whose table has the
    account's rows is merged, so reading it again from the start doubles nothing."""
    settings = StripeSettings(
        api_key=Secret(SANDBOX_API_KEY), api_base=sandbox.url, sandbox=False, orders_path=None
    )
    api = StripeApi(settings.api_key, sandbox.url)
    lists = list(STRIPE_LISTS)
    database, working = tmp_path / "w.duckdb", tmp_path / "dlt"
    pipeline = stripe_pipeline(database, working)
    assert lists_to_append(pipeline, api.account_id, lists) == set(lists)
    run_stripe_account(pipeline, lambda: api, settings)
    expected = {name: truth["counts"][name] for name in lists}
    assert raw_counts(database) == expected
    assert pipeline.default_schema.tables["charges"]["write_disposition"] == "append"
    assert lists_to_append(pipeline, api.account_id, lists) == frozenset()

    # The state forgotten, here and in the warehouse: every list is read from the start.
    pipeline.drop()
    con = duckdb.connect(str(database))
    con.execute("delete from raw_stripe._dlt_pipeline_state")
    con.close()
    pipeline = stripe_pipeline(database, working)
    assert lists_to_append(pipeline, api.account_id, lists) == frozenset()
    calls: list[Call] = []
    api = counting_api(sandbox.url, calls)
    run_stripe_account(pipeline, lambda: api, settings)
    assert all("created[gte]" not in c.params for c in calls if c.path == "/v1/charges")
    assert pipeline.default_schema.tables["charges"]["write_disposition"] == "merge"
    assert raw_counts(database) == expected
    # Another account's first load into the same tables is appended beside it.
    assert lists_to_append(pipeline, "acct_other", lists) == set(lists)


def test_a_run_opens_the_warehouse_once_per_load_and_leaves_it_checkpointed(
    tmp_path, sandbox, truth, monkeypatch
):
    """dlt opens the DuckDB file several times a run; with the file held open for each
    committed load (`warehouse_kept_open`) they share one database, whose catalog is built
    once. A database DuckDB builds anew has the default settings; each one seen is marked."""
    built: list[int] = []
    connect = duckdb.connect

    def marking_connect(*args, **kwargs):
        con = connect(*args, **kwargs)
        if con.execute("select current_setting('max_expression_depth')").fetchone()[0] == 1000:
            built.append(len(built))
            con.execute("set global max_expression_depth = 1001")
        return con

    monkeypatch.setattr(duckdb, "connect", marking_connect)
    settings = StripeSettings(
        api_key=Secret(SANDBOX_API_KEY),
        api_base=sandbox.url,
        sandbox=False,
        orders_path=None,
        objects_per_commit=truth["counts"]["customers"],  # several loads
    )
    api = StripeApi(settings.api_key, sandbox.url)
    database = tmp_path / "w.duckdb"
    pipeline = stripe_pipeline(database, tmp_path / "dlt")
    rows = run_stripe_account(pipeline, lambda: api, settings)
    loads = len(pipeline.list_completed_load_packages())
    assert loads > 1 and len(built) == loads
    assert rows["customers"] == truth["counts"]["customers"]
    assert raw_counts(database) == {name: truth["counts"][name] for name in STRIPE_LISTS}
    # Closed as the load ended: the write-ahead log folded into the file.
    assert not database.with_name(database.name + ".wal").exists()


def test_a_warehouse_another_process_holds_is_a_clear_error(tmp_path):
    """Locked after the run's check (`check_writable`) and before the load: the load says
    so in the project's words, and writes nothing."""
    database = tmp_path / "w.duckdb"
    with held_by_another_process(database):
        pipeline = stripe_pipeline(database, tmp_path / "dlt")
        settings = StripeSettings(
            api_key=Secret(SANDBOX_API_KEY), api_base="http://127.0.0.1:9", sandbox=False,
            orders_path=None,
        )  # fmt: skip
        with pytest.raises(WarehouseLockedError, match="locked by another process"):
            run_stripe_account(pipeline, lambda: pytest.fail("read nothing"), settings)
        assert not pipeline.has_pending_data
