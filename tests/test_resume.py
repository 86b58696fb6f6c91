"""A Stripe load killed with SIGKILL midway resumes: exact counts, nothing twice, and the
lists it had committed are not read again from the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from sandbox.server import SANDBOX_API_KEY, SandboxServer, SandboxState
from sandbox.store import load_ground_truth
from sandbox.webhooks import Faults

LOAD = """
from ingestion.connect import open_stripe
from ingestion.pipelines import run_stripe_account, stripe_pipeline
from ingestion.settings import StripeSettings
settings = StripeSettings.from_env()
api = open_stripe(settings)
run_stripe_account(stripe_pipeline(), lambda: api, settings)
"""


# One list per load, and loads of about 100 objects (the customers, then the lists after).
@pytest.mark.parametrize(("delay", "per_commit"), [(0.3, "0"), (1.2, "100")])
def test_a_load_killed_midway_resumes_with_exact_counts(
    tmp_path: Path, dataset: Path, delay, per_commit
):
    # Every answer is slowed down so that the kill lands in the middle of the lists.
    state = SandboxState(dataset, faults=Faults(slow=1.0, slow_seconds=0.15))
    root = Path(__file__).resolve().parents[1]
    database = tmp_path / "warehouse.duckdb"
    with SandboxServer(state) as sandbox:
        env = {
            **os.environ,
            "STRIPE_API_KEY": SANDBOX_API_KEY,
            "STRIPE_API_BASE": sandbox.url,
            "DUCKDB_PATH": str(database),
            "DLT_PIPELINES_DIR": str(tmp_path / "dlt"),
            "STRIPE_OBJECTS_PER_COMMIT": per_commit,
        }
        process = subprocess.Popen([sys.executable, "-c", LOAD], cwd=root, env=env)
        deadline = time.monotonic() + 60
        # Kill once a list or two are committed: the charges list is being read.
        while not any("/v1/charges" in r for r in state.requests):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        first_run = len(state.requests)
        state.faults = None
        subprocess.run([sys.executable, "-c", LOAD], cwd=root, env=env, check=True, timeout=300)
        resumed = state.requests[first_run:]
    # The customers list was committed before the kill: the resumed run read it from its
    # cursor, not from the start.
    customer_reads = [r for r in resumed if r.startswith("GET /v1/customers")]
    assert customer_reads and all("created%5Bgte%5D" in r for r in customer_reads), customer_reads
    truth = load_ground_truth(dataset)
    con = duckdb.connect(str(database), read_only=True)
    try:
        for name, count in truth["counts"].items():
            if name == "orders":
                continue
            rows, distinct = con.execute(
                f"select count(*), count(distinct id) from raw_stripe.{name}"
            ).fetchone()
            assert rows == distinct == count, name
    finally:
        con.close()


def test_what_a_killed_run_extracted_is_loaded_before_the_next_step(tmp_path: Path, sandbox):
    """A run killed after extracting (or normalising) leaves a package: it is loaded first,
    and the next step is still extracted, not skipped."""
    from ingestion.pipelines import LOADER_FILE_FORMAT, finish_pending, stripe_pipeline
    from ingestion.settings import Secret
    from ingestion.stripe_api import StripeApi
    from ingestion.stripe_source import stripe_source

    api = StripeApi(Secret(SANDBOX_API_KEY), sandbox.url)
    pipeline = stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt")
    pipeline.extract(
        stripe_source(lambda: api).with_resources("customers"),
        loader_file_format=LOADER_FILE_FORMAT,
    )
    assert pipeline.has_pending_data
    finish_pending(pipeline)
    assert not pipeline.has_pending_data
    pipeline.run(stripe_source(lambda: api).with_resources("products"),
                 loader_file_format=LOADER_FILE_FORMAT)  # fmt: skip
    api.close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        customers = con.execute("select count(*) from raw_stripe.customers").fetchone()[0]
        products = con.execute("select count(*) from raw_stripe.products").fetchone()[0]
    finally:
        con.close()
    truth = json.loads((Path(sandbox.state.folder) / "ground_truth.json").read_text())
    assert (customers, products) == (truth["counts"]["customers"], truth["counts"]["products"])


def _committed_tables(pipeline) -> list[list[str]]:
    """The raw tables each committed load wrote rows to, in load order."""
    loads = []
    for load_id in sorted(pipeline.list_completed_load_packages()):
        jobs = pipeline.get_load_package_info(load_id).jobs["completed_jobs"]
        tables = {job.job_file_info.table_name for job in jobs if job.file_size > 0}
        loads.append(sorted(t for t in tables if not t.startswith("_dlt")))
    return loads


def test_loads_are_committed_by_objects_read(tmp_path: Path, sandbox, truth, monkeypatch):
    """A small account's first load is one commit; with a smaller `STRIPE_OBJECTS_PER_COMMIT`
    each load reads lists until it has read that many objects, the events come after every
    list, and the rows are the same."""
    from ingestion.pipelines import run_stripe_account, stripe_pipeline
    from ingestion.settings import Secret, StripeSettings
    from ingestion.stripe_api import StripeApi
    from ingestion.stripe_source import STRIPE_LISTS

    monkeypatch.setenv("STRIPE_API_KEY", SANDBOX_API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", sandbox.url)
    # Each load's tables are read from its job files (`_committed_tables`), which the
    # pipelines have dlt delete once loaded: kept for this test.
    monkeypatch.setenv("LOAD__DELETE_COMPLETED_JOBS", "false")
    counts = {name: truth["counts"][name] for name in STRIPE_LISTS}
    per_load = {}
    for per_commit in ("", "0", "300"):
        monkeypatch.setenv("STRIPE_OBJECTS_PER_COMMIT", per_commit)
        settings = StripeSettings.from_env()
        api = StripeApi(Secret(SANDBOX_API_KEY), sandbox.url)
        database = tmp_path / f"w{per_commit}.duckdb"
        pipeline = stripe_pipeline(database, tmp_path / f"dlt{per_commit}")
        rows = run_stripe_account(pipeline, lambda api=api: api, settings)
        api.close()
        assert {name: rows[name] for name in STRIPE_LISTS} == counts, per_commit
        per_load[per_commit] = _committed_tables(pipeline)
    # The default (50,000 objects) holds this account in one load; 0 is one list per load.
    assert per_load[""] == [sorted([*counts, "events"])]
    assert per_load["0"] == [[name] for name in counts] + [["events"]]
    # 300: each load ends with the list that took it to 300 objects; the events in the last.
    expected, load, read = [], [], 0
    for name, count in counts.items():
        load, read = [*load, name], read + count
        if read >= 300:
            expected, load, read = [*expected, sorted(load)], [], 0
    expected.append(sorted([*load, "events"]))
    assert per_load["300"] == expected


def test_a_package_loaded_again_after_a_kill_leaves_each_object_once(tmp_path, monkeypatch):
    """A run killed after the warehouse committed an appended table's rows, but before dlt
    recorded it, loads them again when it resumes: the copies go, the latest read stays."""
    from ingestion.pipelines import drop_repeated_rows, stripe_pipeline

    database = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("DUCKDB_PATH", str(database))
    monkeypatch.setenv("DLT_PIPELINES_DIR", str(tmp_path / "dlt"))
    con = duckdb.connect(str(database))
    con.execute("create schema raw_stripe")
    con.execute(
        "create table raw_stripe.charges as select * from (values "
        "('acct_1', 'ch_1', 1, timestamptz '2026-12-01 10:00:00'), "
        "('acct_1', 'ch_1', 1, timestamptz '2026-12-01 10:00:00'), "
        "('acct_1', 'ch_2', 2, timestamptz '2026-12-01 10:00:00'), "
        "('acct_1', 'ch_2', 2, timestamptz '2026-12-02 10:00:00'), "
        "('acct_2', 'ch_1', 1, timestamptz '2026-12-01 10:00:00')) "
        "as t(account_id, id, created, extracted_at)"
    )
    con.close()
    drop_repeated_rows(stripe_pipeline())
    con = duckdb.connect(str(database), read_only=True)
    assert con.execute(
        "select account_id, id, extracted_at::date::varchar from raw_stripe.charges order by 1, 2"
    ).fetchall() == [
        ("acct_1", "ch_1", "2026-12-01"),
        ("acct_1", "ch_2", "2026-12-02"),
        ("acct_2", "ch_1", "2026-12-01"),
    ]
    con.close()
