"""`make bench`: how fast stripe-elt is, measured side by side in one run.

    python -m benchmarks [--sizes 10k,100k,1m] [--runs 3] [--parts load,incremental,...]
                         [--reuse-loads]   (dbt and publish on the last loads' warehouses)

For each size (charges in the sandbox, with proportional refunds, customers, subscriptions,
invoices and balance transactions) and each run:

  load         this pipeline's full historical load (HTTP -> DuckDB): objects/s, peak memory
  naive        the naive baseline on the same sandbox (stripe-python `auto_paging_iter` into a
               dlt resource with dlt's defaults), bounded in time: objects/s, peak memory
  incremental  the sandbox's clock advanced with ~1,000 changed objects, then the next load;
               with 10k and 1M among the sizes, once more per run after the runs, the two
               sizes' incremental runs back to back (their ratio: the cost's growth)
  dbt          the pipeline's `dbt build` (every model and data test) on that warehouse, with
               the sandbox stopped (at 1M charges it holds ~7 GB, which a user's build would
               not share); before the first, the machine's pace (a fixed workload, timed:
               this machine's speed changes by the hour, and a first build's time with it)
  publish      the default tabs to a fake Google Sheets API: requests and seconds
  webhook      an event sent by the sandbox -> landed by the receiver -> in the mart -> in
               the published tab (the sensor's job, as the daemon would start it)

and once per run, independent of the size:

  receiver     accepted events/s and p50/p99 latency of the webhook receiver (signatures
               checked, events fsync'd before the 200), driven from a second process

The sandbox serves from a process of its own (it shares the machine's cores). Every step
runs in a fresh process; peak memory is that process's own maximum resident set (VmHWM).
Results are printed as medians with their spread and written to
`.state/bench/results-<time>.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from orchestration.dbt_build import DBT_BUILD_ARGS
from sandbox.server import SANDBOX_API_KEY
from sandbox.settings import PROJECT_ROOT
from sandbox.store import dataset_dir

SIZES = {"2k": 2_000, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
PARTS = ("load", "naive", "incremental", "dbt", "publish", "webhook", "receiver")
# The parts that need the full load's warehouse (the receiver alone does not).
LOAD_PARTS = {"load", "naive", "incremental", "dbt", "publish", "webhook"}
# The datasets, warehouses, logs and results (BENCH_DIR for another place).
BENCH_ROOT = Path(os.environ.get("BENCH_DIR") or PROJECT_ROOT / ".state" / "bench").resolve()
SEED = 42
PYTHON = sys.executable
TARGETS = {
    "load_objects_per_second": 10_000,
    "load_vs_naive": 20,
    "load_peak_mb_1m": 1024,
    "incremental_share_of_full_1m": 0.02,
    "incremental_growth_1m_vs_10k": 0.20,
    "dbt_seconds_1m": 30,
    "receiver_events_per_second": 2_000,
    "receiver_p99_ms": 50,
    "webhook_to_mart_seconds": 60,
}


class StepFailedError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(
    args: list[str], env: dict[str, str], log_path: Path, timeout: float = 7_200
) -> tuple[dict[str, Any], float, float]:
    """Run a step in its own process: its JSON result, wall seconds and peak RSS in MB."""
    started = time.perf_counter()
    with open(log_path, "ab") as err:
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, cwd=PROJECT_ROOT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise StepFailedError(f"{' '.join(args[1:4])} exited {proc.returncode}; see {log_path}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    # A step reports its own peak: `wait4`'s also counts this process's memory at the fork.
    return result, seconds, result.get("own_peak_mb") or usage.ru_maxrss / 1024


# -- the sandbox --------------------------------------------------------------------------


def ensure_dataset(charges: int, logs: Path) -> dict[str, Any]:
    """The sandbox dataset of this size, generated (and timed) the first time."""
    data_dir = BENCH_ROOT / "sandbox"
    folder = dataset_dir(data_dir, SEED, charges)
    record = data_dir / "generated.json"
    known = json.loads(record.read_text()) if record.exists() else {}
    if not (folder / "manifest.json").exists():
        log(f"generating the sandbox's {charges:,} charges")
        args = [PYTHON, "-m", "sandbox", "generate", "--seed", str(SEED),
                "--charges", str(charges), "--data-dir", str(data_dir)]  # fmt: skip
        _, seconds, peak = run_child(args, dict(os.environ), logs / "generate.log")
        known[folder.name] = {"seconds": round(seconds, 1), "peak_mb": round(peak),
                              "date": dt.date.today().isoformat()}  # fmt: skip
        record.write_text(json.dumps(known, indent=2) + "\n")
    objects = sum(_lines(path) for path in (folder / "objects").glob("*.jsonl"))
    return {"folder": folder, "objects": objects, "generator": known.get(folder.name, {})}


def _lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


@contextlib.contextmanager
def sandbox(charges: int, logs: Path, *, history: bool = True) -> Iterator[str]:
    """The sandbox serving the dataset: from its generated history (earlier advances
    forgotten), or with `history=False` where the last run left it."""
    if history:
        (dataset_dir(BENCH_ROOT / "sandbox", SEED, charges) / "advance.json").unlink(
            missing_ok=True
        )
    port = free_port()
    args = [PYTHON, "-m", "sandbox", "serve", "--seed", str(SEED), "--charges", str(charges),
            "--port", str(port), "--data-dir", str(BENCH_ROOT / "sandbox")]  # fmt: skip
    with open(logs / "sandbox.log", "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/v1/account", proc, "the sandbox")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_for(url: str, proc: subprocess.Popen, what: str, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StepFailedError(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise StepFailedError(f"{what} did not answer within {seconds:.0f} s")


def api_post(url: str, path: str, data: dict | list) -> dict[str, Any]:
    """A POST to the sandbox; a sandbox that is gone or refuses it fails the step, so that
    the figures measured before are still written and reported."""
    try:
        answer = httpx.post(
            url + path, data=data, timeout=900,
            headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        )  # fmt: skip
        answer.raise_for_status()
    except httpx.HTTPStatusError as err:
        raise StepFailedError(
            f"the sandbox answered POST {path} with {err.response.status_code}: "
            f"{err.response.text[:300]}"
        ) from None
    except httpx.HTTPError as err:
        raise StepFailedError(f"the sandbox at {url} did not answer POST {path} ({err})") from None
    return answer.json()


def advance_one_day(url: str, changes: int) -> dict[str, Any]:
    """The sandbox's clock moved one day with about `changes` changes (an incremental run's
    day); its answer counts the changed objects and the events."""
    return api_post(url, "/v1/test_helpers/advance", {"seconds": 86_400, "changes": changes})


@contextlib.contextmanager
def receiver(secret: str, landing: Path, logs: Path, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": secret, "WEBHOOK_LANDING_DIR": str(landing),
           "WEBHOOK_PORT": str(port)}  # fmt: skip
    with open(logs / "receiver.log", "ab") as out:
        proc = subprocess.Popen([PYTHON, "-m", "ingestion.webhooks"], env=env, stdout=out,
                                stderr=out, cwd=PROJECT_ROOT)  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz", proc, "the receiver", 60)
        yield f"http://127.0.0.1:{port}/webhooks/stripe"
    finally:
        proc.terminate()
        proc.wait(30)


# -- one run at one size ------------------------------------------------------------------


def pipeline_env(workdir: Path, url: str, orders: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "GOOGLE_"))}
    env.update(
        STRIPE_API_KEY=SANDBOX_API_KEY,
        STRIPE_API_BASE=url,
        CAREPORTALS_ORDERS_PATH=str(orders),
        DUCKDB_PATH=str(workdir / "warehouse.duckdb"),
        DLT_PIPELINES_DIR=str(workdir / "dlt"),
        WORKBOOK_PATH=str(workdir / "marts.xlsx"),
        WEBHOOK_LANDING_DIR=str(workdir / "landing"),
        DAGSTER_HOME=str(workdir / "dagster"),
        RUNTIME_DATA_DIR=str(workdir / "runtime"),
    )
    (workdir / "dagster").mkdir(parents=True, exist_ok=True)
    return env


# The CarePortals orders step; and the API base of steps that must not reach a sandbox.
ORDERS_STEP = [PYTHON, "-m", "benchmarks.steps", "orders"]
LOAD_STEP = [PYTHON, "-m", "benchmarks.steps", "load"]
NO_SANDBOX = "http://127.0.0.1:9"


def run_dir(size: str, run: int) -> Path:
    return BENCH_ROOT / "runs" / f"{size}-{run}"


def loads(
    size: str, run: int, url: str, dataset: dict, args, logs: Path, out: dict[str, Any]
) -> None:
    """With the sandbox serving: the full load, the naive baseline, the orders, and the
    incremental run after ~1,000 changed objects, each written to the run's `out` as it is
    measured (a later step that fails leaves them there)."""
    workdir = run_dir(size, run)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    orders = dataset["folder"] / "careportals_orders.csv"
    env = pipeline_env(workdir, url, orders)
    step_log = logs / f"{size}-{run}.log"
    out["workdir"] = str(workdir)
    parts = args.parts

    log(f"{size} run {run}: full load")
    result, _, peak = run_child(LOAD_STEP, env, step_log)
    out["load"] = {**result, "peak_mb": peak,
                   "objects_per_second": result["objects"] / result["seconds"]}  # fmt: skip
    log(f"  {result['objects']:,} objects in {result['seconds']:.1f} s "
        f"= {out['load']['objects_per_second']:,.0f}/s, peak {peak:,.0f} MB")  # fmt: skip
    if "naive" in parts:
        log(f"{size} run {run}: naive baseline (at most {args.baseline_seconds:.0f} s of reading)")
        naive_dir = workdir / "naive"
        naive_env = pipeline_env(naive_dir, url, orders)
        result, _, peak = run_child(
            [PYTHON, "-m", "benchmarks.steps", "naive", "--seconds", str(args.baseline_seconds)],
            naive_env, step_log,
        )  # fmt: skip
        out["naive"] = {**result, "peak_mb": peak,
                        "objects_per_second": result["objects"] / result["seconds"]}  # fmt: skip
        log(f"  {result['objects']:,} objects in {result['seconds']:.1f} s "
            f"= {out['naive']['objects_per_second']:,.0f}/s, peak {peak:,.0f} MB")  # fmt: skip
        shutil.rmtree(naive_dir, ignore_errors=True)
    if parts & {"dbt", "publish", "webhook"}:
        run_child(ORDERS_STEP, env, step_log)
    if "dbt" in parts and "incremental" in parts:
        # The first build, before the incremental run, so that the build after that run
        # stages only what it changed, as a deployment's scheduled builds do.
        first_build(size, run, "dbt build (the first)", workdir, dataset, logs, out)
    if "incremental" in parts:
        changes = advance_one_day(url, args.changes)
        changed = sum(changes["changed"].values())
        log(f"{size} run {run}: incremental after {changed:,} changed objects "
            f"({changes['events']:,} events)")  # fmt: skip
        result, _, peak = run_child(LOAD_STEP, env, step_log)
        out["incremental"] = {**result, "peak_mb": peak, "changed_objects": changed,
                              "events": changes["events"]}  # fmt: skip
        log(f"  {result['seconds']:.2f} s ({result['objects']:,} rows), peak {peak:,.0f} MB")


def reused(size: str, run: int, dataset: dict, logs: Path) -> dict[str, Any]:
    """`--reuse-loads`: the run's warehouse as the last benchmark's loads left it, with the
    orders, which a load-only benchmark did not bring (a merge: again is a no-op)."""
    workdir = run_dir(size, run)
    env = pipeline_env(workdir, NO_SANDBOX, dataset["folder"] / "careportals_orders.csv")
    run_child(ORDERS_STEP, env, logs / f"{size}-{run}.log")
    return {"workdir": str(workdir), "reused": True}


@contextlib.contextmanager
def build_warehouse(warehouse: Path) -> Iterator[Path]:
    """The run's warehouse, moved to one path for its build and back after. dbt parses the
    whole project again whenever the profile changes, and the warehouse path is part of
    it: at one path, every build parses only what changed, as a deployment's builds do."""
    at = BENCH_ROOT / "build" / "warehouse.duckdb"
    at.parent.mkdir(parents=True, exist_ok=True)
    # The file and its write-ahead log, if a writer left one, go together.
    pairs = [(warehouse.with_name(warehouse.name + s), at.with_name(at.name + s))
             for s in ("", ".wal")]  # fmt: skip
    at.with_name(at.name + ".wal").unlink(missing_ok=True)
    for source, target in pairs:
        if source.exists():
            os.replace(source, target)
    try:
        yield at
    finally:
        for source, target in pairs:
            if target.exists():
                os.replace(target, source)


def run_dbt(command: list[str], env: dict[str, str], step_log: Path) -> float:
    """One dbt command from the dbt project, its output appended to `step_log`: its wall
    seconds."""
    started = time.perf_counter()
    with open(step_log, "ab") as err:
        done = subprocess.run(
            [str(Path(PYTHON).parent / "dbt"), *command, "--profiles-dir", "."],
            env=env, stdout=err, stderr=err, cwd=PROJECT_ROOT / "dbt_project",
        )  # fmt: skip
    if done.returncode != 0:
        raise StepFailedError(f"dbt {' '.join(command)} failed; see {step_log}")
    return time.perf_counter() - started


def dbt_build(env: dict[str, str], step_log: Path, *, full_refresh: bool = False) -> float:
    """The pipeline's `dbt build` from the dbt project: its wall seconds. A `dbt parse`
    first (not timed) leaves the parse state a deployment has after any earlier build."""
    run_dbt(["parse"], env, step_log)
    return run_dbt([*DBT_BUILD_ARGS, *(["--full-refresh"] if full_refresh else [])],
                   env, step_log)  # fmt: skip


def machine_pace(env: dict[str, str], step_log: Path) -> dict[str, float]:
    """The machine's pace right now (`benchmarks.steps.pace`): a fixed workload's seconds."""
    result, _, _ = run_child([PYTHON, "-m", "benchmarks.steps", "pace"], env, step_log)
    log(f"  the machine's pace: Python {result['python_seconds']:.2f} s, "
        f"DuckDB {result['duckdb_seconds']:.2f} s")  # fmt: skip
    return result


def timed_build(
    size: str, run: int, label: str, workdir: Path, dataset: dict, logs: Path,
    *, full_refresh: bool = False,
) -> dict[str, float]:  # fmt: skip
    """The pipeline's dbt build on the run's warehouse, without the sandbox's address."""
    env = pipeline_env(workdir, NO_SANDBOX, dataset["folder"] / "careportals_orders.csv")
    log(f"{size} run {run}: {label}")
    with build_warehouse(workdir / "warehouse.duckdb") as database:
        seconds = dbt_build({**env, "DUCKDB_PATH": str(database)}, logs / f"{size}-{run}.log",
                            full_refresh=full_refresh)  # fmt: skip
    log(f"  {seconds:.1f} s")
    return {"seconds": seconds}


def first_build(
    size: str, run: int, label: str, workdir: Path, dataset: dict, logs: Path,
    out: dict[str, Any], *, full_refresh: bool = False,
) -> None:  # fmt: skip
    """A first build (`out["dbt"]`), with the machine's pace taken right before it
    (`out["pace"]`): a first build's time follows the machine's speed, which changes by the
    hour."""
    env = pipeline_env(workdir, NO_SANDBOX, dataset["folder"] / "careportals_orders.csv")
    out["pace"] = machine_pace(env, logs / f"{size}-{run}.log")
    out["dbt"] = timed_build(size, run, label, workdir, dataset, logs, full_refresh=full_refresh)


def builds(size: str, run: int, dataset: dict, args, logs: Path, out: dict[str, Any]) -> None:
    """With the sandbox stopped (it holds the whole account in memory): `dbt build` of
    every model and test, then the publish of the default tabs. After a first build made
    before the incremental run (in `done`), the build after that run: the staging models
    parse only what it changed. With `--reuse-loads`, a first build of the warehouses as
    they are, staged tables and all (`--full-refresh`). Each figure goes to the run's `out`
    as it is measured."""
    workdir = run_dir(size, run)
    env = pipeline_env(workdir, NO_SANDBOX, dataset["folder"] / "careportals_orders.csv")
    step_log = logs / f"{size}-{run}.log"
    if "dbt" in args.parts and "dbt" in out:
        out["dbt_after_incremental"] = timed_build(
            size, run, "dbt build after the incremental run", workdir, dataset, logs
        )
    elif "dbt" in args.parts:
        first_build(size, run, "dbt build", workdir, dataset, logs, out,
                    full_refresh=args.reuse_loads)  # fmt: skip
    if "publish" in args.parts:
        log(f"{size} run {run}: publish to the fake Google Sheets")
        result, _, peak = run_child([PYTHON, "-m", "benchmarks.steps", "publish"], env, step_log)
        out["publish"] = {**result, "peak_mb": peak}
        if "error" in result:
            log(f"  refused after {result['seconds']:.1f} s: {result['error']}")
        else:
            log(f"  {result['requests']} requests, {result['cells']:,} cells, "
                f"{result['seconds']:.1f} s")  # fmt: skip


def webhook_to_mart(
    size: str, url: str, workdir: Path, orders: Path, runs: int, logs: Path
) -> list[dict]:
    """An event the sandbox sends -> landed -> in the mart -> in the published tab.

    The tabs go to a fake Google Sheets API (the business's destination), published once
    before the first event as the previous runs would have: a run rewrites only the tabs
    that changed."""
    from publishing.publish import publish_marts
    from publishing.settings import PublishSettings
    from publishing.sheets import PublishError
    from tests.fakes.sheets import FakeSheets, FakeSheetsServer

    port = free_port()
    landing = workdir / "landing"
    endpoint = api_post(url, "/v1/webhook_endpoints",
                        {"url": f"http://127.0.0.1:{port}/webhooks/stripe",
                         "enabled_events[0]": "*"})  # fmt: skip
    spreadsheet = "bench-webhooks"
    env = pipeline_env(workdir, url, orders)
    env["GOOGLE_SHEETS_SPREADSHEET_ID"] = spreadsheet
    fake = FakeSheets()
    fake.create(spreadsheet)
    # The parse state a deployment's sensor runs find, left by its earlier runs (not timed):
    # the dbt part's builds parsed with another warehouse path, and a changed profile makes
    # dbt parse the whole project again.
    run_dbt(["parse"], env, logs / f"{size}-webhook.log")
    results = []
    with receiver(endpoint["secret"], landing, logs, port), FakeSheetsServer(fake) as sheets:
        try:
            publish_marts(
                PublishSettings(spreadsheet_id=spreadsheet),
                database=workdir / "warehouse.duckdb",
                session=sheets.session(),
            )
            refused = None
        except PublishError as err:  # tabs past Google's limits: the mart is still measured
            refused = str(err)
            log(f"{size} webhook: the tabs are refused at this size ({refused})")
        # An advance's one new order can fail to pay; its run is kept in the raw figures but
        # not timed, and the sandbox advances again, until `runs` payments were followed.
        attempts = 0
        while (paid_runs := sum(1 for r in results if r["payments"])) < runs:
            attempts += 1
            if attempts > 3 * runs:
                raise StepFailedError(
                    f"{attempts - 1} advances of the sandbox brought {paid_runs} successful "
                    f"payments, not {runs}"
                )
            seen = set(_landed(landing))
            advanced = api_post(url, "/v1/test_helpers/advance", {"seconds": 7200, "changes": 1})
            # From the moment the sandbox sent the events (it first simulates the two hours
            # and rewrites its export: at 1M charges that alone takes about 27 s).
            sent = advanced["events_sent_at"]
            while len(set(_landed(landing)) - seen) < advanced["events"]:
                if time.time() - sent > 120:
                    raise StepFailedError("the sandbox's events did not all land in 120 s")
                time.sleep(0.01)
            landed_at = time.time()
            new = {k: v for k, v in _landed(landing).items() if k not in seen}
            paid = [k for k, kind in new.items() if kind == "payment_intent.succeeded"]
            job = [PYTHON, "-m", "benchmarks.steps", "webhook-job", "--sheets-url", sheets.url]
            result, _, peak = run_child(job, env, logs / f"{size}-webhook.log")
            done = result["materialized_at"]
            mart_at = next(
                (at for key, at in done.items() if key.endswith("careportals_payments_succeeded")),
                None,
            )
            tab_at = done.get("published_marts")
            in_mart = _in_mart(workdir, paid)
            published = "payment_succesful" in fake.titles(spreadsheet)
            tab = fake.sheet(spreadsheet, "payment_succesful").values() if published else []
            in_tab = bool(paid) and set(paid) <= {row[1] for row in tab[1:]}
            results.append({
                "events": advanced["events"], "payments": len(paid), "success": result["success"],
                "landed_s": landed_at - sent,
                "mart_s": mart_at - sent if mart_at else None,
                "tab_s": tab_at - sent if tab_at else None,
                "in_mart": in_mart, "in_tab": in_tab, "peak_mb": peak, "tabs_refused": refused,
            })  # fmt: skip
            r = results[-1]
            log(f"{size} webhook {attempts - 1}: landed {r['landed_s']:.2f} s, mart "
                f"{r['mart_s'] or float('nan'):.1f} s, tab {r['tab_s'] or float('nan'):.1f} s "
                f"({len(paid)} payments; in mart {in_mart}, in tab {in_tab})"
                + ("" if paid else "; not timed: the advance's new order did not pay"))  # fmt: skip
    return results


def incremental_side_by_side(datasets: dict[str, dict], args, logs: Path) -> list[dict]:
    """The incremental run at 10k and at 1M history back to back, `args.runs` times, on the
    warehouses the last run left, with both sandboxes serving where that run left them.

    Each round advances both sandboxes first (at 1M the sandbox's own work for a day takes
    about half a minute), then runs the two loads one right after the other, in turns which
    goes first: the ratio of two runs of a second or two taken seconds apart, not ten
    minutes apart, on a machine whose speed moves within the hour."""
    sizes = ("10k", "1m")
    pairs: list[dict] = []
    with contextlib.ExitStack() as stack:
        urls = {}
        for size in sizes:
            log(f"{size}: the sandbox where the last run left it")
            urls[size] = stack.enter_context(sandbox(SIZES[size], logs, history=False))
        for round_ in range(args.runs):
            changed = {}
            for size in sizes:
                changes = advance_one_day(urls[size], args.changes)
                changed[size] = sum(changes["changed"].values())
            seconds = {}
            for size in sizes if round_ % 2 == 0 else sizes[::-1]:
                workdir = run_dir(size, args.runs - 1)
                orders = datasets[size]["folder"] / "careportals_orders.csv"
                env = pipeline_env(workdir, urls[size], orders)
                result, _, _ = run_child(LOAD_STEP, env, logs / f"{size}-side-by-side.log")
                seconds[size] = result["seconds"]
            pairs.append({"seconds": seconds, "changed_objects": changed,
                          "first": "10k" if round_ % 2 == 0 else "1m",
                          "ratio": seconds["1m"] / seconds["10k"]})  # fmt: skip
            log(f"side by side {round_}: 10k {seconds['10k']:.2f} s, 1m {seconds['1m']:.2f} s "
                f"({changed['10k']:,} and {changed['1m']:,} changed objects): "
                f"{pairs[-1]['ratio']:.2f}x")  # fmt: skip
    return pairs


def _landed(landing: Path) -> dict[str, str]:
    events = {}
    for path in landing.glob("events-*.jsonl"):
        for line in path.read_bytes().splitlines():
            event = orjson.loads(line)["event"]
            events[event["id"]] = event["type"]
    return events


def _in_mart(workdir: Path, event_ids: list[str]) -> bool:
    """Whether every payment event is in the mart, recorded from the webhook."""
    import duckdb

    if not event_ids:
        return False
    con = duckdb.connect(str(workdir / "warehouse.duckdb"), read_only=True)
    try:
        found = con.execute(
            "select count(*) from marts.careportals_payments_succeeded "
            "where recorded_from = 'webhook' and list_contains(?, event_id)",
            [event_ids],
        ).fetchone()[0]
    finally:
        con.close()
    return found == len(event_ids)


def receiver_runs(runs: int, template: Path, args, logs: Path) -> list[dict]:
    results = []
    for run in range(runs):
        landing = BENCH_ROOT / "runs" / f"receiver-{run}"
        shutil.rmtree(landing, ignore_errors=True)
        secret = "whsec_benchmark_" + "0" * 24
        with receiver(secret, landing, logs) as url:
            load = [PYTHON, "-m", "benchmarks.webhook_load", "--url", url, "--secret", secret,
                    "--template", str(template), "--events", str(args.receiver_events),
                    "--connections", str(args.receiver_connections)]  # fmt: skip
            result, _, _ = run_child(load, dict(os.environ), logs / "receiver-load.log")
        landed = sum(len(p.read_bytes().splitlines()) for p in landing.glob("events-*.jsonl"))
        result["landed"] = landed
        results.append(result)
        log(f"receiver run {run}: {result['events_per_second']:,.0f} events/s, p50 "
            f"{result['p50_ms']} ms, p99 {result['p99_ms']} ms ({landed:,} landed)")  # fmt: skip
        shutil.rmtree(landing, ignore_errors=True)
    return results


# -- the summary --------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def fmt(stat: dict[str, float] | None, digits: int = 0, unit: str = "") -> str:
    if not stat:
        return "-"
    m, lo, hi = stat["median"], stat["min"], stat["max"]
    if stat["n"] == 1:
        return f"{m:,.{digits}f}{unit}"
    return f"{m:,.{digits}f}{unit} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def scaled(stat: dict[str, float] | None, factor: float) -> dict[str, float] | None:
    """A spread (`spread`) with its figures multiplied by `factor`: a share as a percentage."""
    if not stat or factor == 1:
        return stat
    return {k: v * factor if k != "n" else v for k, v in stat.items()}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for size, block in results["sizes"].items():
        runs = block["runs"]

        def values(part: str, key: str, runs=runs) -> list[float]:
            return [r[part][key] for r in runs if part in r and r[part].get(key) is not None]

        s: dict[str, Any] = {"objects": block["objects"], "generator": block["generator"]}
        for part, key in [("load", "objects_per_second"), ("load", "peak_mb"),
                          ("load", "seconds"), ("naive", "objects_per_second"),
                          ("naive", "peak_mb"), ("incremental", "seconds"),
                          ("incremental", "changed_objects"), ("dbt", "seconds"),
                          ("dbt_after_incremental", "seconds"),
                          ("pace", "python_seconds"), ("pace", "duckdb_seconds"),
                          ("publish", "seconds"), ("publish", "requests")]:  # fmt: skip
            found = values(part, key)
            if found:
                s[f"{part}_{key}"] = spread(found)
        ratios = [r["load"]["objects_per_second"] / r["naive"]["objects_per_second"]
                  for r in runs if "load" in r and "naive" in r]  # fmt: skip
        if ratios:
            s["load_vs_naive"] = spread(ratios)
        shares = [r["incremental"]["seconds"] / r["load"]["seconds"]
                  for r in runs if "load" in r and "incremental" in r]  # fmt: skip
        if shares:
            s["incremental_share_of_full"] = spread(shares)
        errors = [r["publish"]["error"] for r in runs if "error" in r.get("publish", {})]
        if errors:
            s["publish_error"] = errors[0]
        hooks = block.get("webhook") or []
        # Timed only where the payment was seen where it was measured to (the mart, the tab).
        seen_in = {"landed_s": "events", "mart_s": "in_mart", "tab_s": "in_tab"}
        for key, check in seen_in.items():
            found = [h[key] for h in hooks if h.get(key) is not None and h.get(check)]
            if found:
                s[f"webhook_{key}"] = spread(found)
        summary[size] = s
    sizes = results["sizes"]
    if "1m" in sizes and "10k" in sizes:
        # Each run's incremental at 1M against the same run's at 10k (the sizes take turns,
        # minutes apart); and the two side by side, seconds apart, which the target reads.
        pairs = [big["incremental"]["seconds"] / small["incremental"]["seconds"]
                 for big, small in zip(sizes["1m"]["runs"], sizes["10k"]["runs"], strict=False)
                 if "incremental" in big and "incremental" in small]  # fmt: skip
        if pairs:
            summary["1m"]["incremental_vs_10k_runs"] = spread(pairs)
        side = results.get("incremental_side_by_side") or []
        if side:
            summary["10k"]["incremental_side_by_side_seconds"] = spread(
                [p["seconds"]["10k"] for p in side]
            )
            summary["1m"]["incremental_side_by_side_seconds"] = spread(
                [p["seconds"]["1m"] for p in side]
            )
            summary["1m"]["incremental_vs_10k"] = spread([p["ratio"] for p in side])
    if results.get("receiver"):
        rec = results["receiver"]
        summary["receiver"] = {
            "events_per_second": spread([r["events_per_second"] for r in rec]),
            "p50_ms": spread([r["p50_ms"] for r in rec]),
            "p99_ms": spread([r["p99_ms"] for r in rec]),
        }
    return summary


def report(summary: dict[str, Any]) -> str:
    sizes = [s for s in summary if s != "receiver"]
    lines = ["| measurement | " + " | ".join(sizes) + " |",
             "| --- | " + " | ".join("---" for _ in sizes) + " |"]  # fmt: skip

    def row(label: str, key: str, digits: int = 0, unit: str = "", scale: float = 1) -> None:
        cells = [fmt(scaled(summary[s].get(key), scale), digits, unit) for s in sizes]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

    lines.append("| objects in the account | " + " | ".join(
        f"{summary[s]['objects']:,}" for s in sizes) + " |")  # fmt: skip
    lines.append("| generator, s (when the kept dataset was made) | " + " | ".join(
        str(summary[s]["generator"].get("seconds", "-")) for s in sizes) + " |")  # fmt: skip
    row("full load, objects/s", "load_objects_per_second")
    row("full load, s", "load_seconds", 1)
    row("full load, peak MB", "load_peak_mb")
    row("naive baseline, objects/s", "naive_objects_per_second")
    row("naive baseline, peak MB", "naive_peak_mb")
    row("full load / naive", "load_vs_naive", 1, "x")
    row("incremental run, s", "incremental_seconds", 2)
    row("incremental, changed objects", "incremental_changed_objects")
    row("incremental / full load", "incremental_share_of_full", 2, "%", scale=100)
    row("incremental / the same run's at 10k", "incremental_vs_10k_runs", 2, "x")
    row("incremental side by side, s", "incremental_side_by_side_seconds", 2)
    row("incremental side by side / 10k's", "incremental_vs_10k", 2, "x")
    row("dbt build, s", "dbt_seconds", 1)
    row("dbt build after the incremental run, s", "dbt_after_incremental_seconds", 1)
    row("machine's pace before the first build: Python, s", "pace_python_seconds", 2)
    row("machine's pace before the first build: DuckDB, s", "pace_duckdb_seconds", 2)
    row("Sheets publish, s", "publish_seconds", 1)
    row("Sheets publish, requests", "publish_requests")
    row("webhook landed, s", "webhook_landed_s", 2)
    row("webhook to mart, s", "webhook_mart_s", 1)
    row("webhook to tab, s", "webhook_tab_s", 1)
    for s in sizes:
        if "publish_error" in summary[s]:
            lines.append(f"\nSheets publish at {s}: {summary[s]['publish_error']}")
    if "receiver" in summary:
        rec = summary["receiver"]
        lines.append(
            f"\nWebhook receiver: {fmt(rec['events_per_second'])} events/s, p50 "
            f"{fmt(rec['p50_ms'], 1, ' ms')}, p99 {fmt(rec['p99_ms'], 1, ' ms')}"
        )
    return "\n".join(lines)


def targets(summary: dict[str, Any]) -> list[str]:
    """Each target with its measured figure: met or missed."""
    out = []

    def check(label: str, value: float | None, ok: bool | None, shown: str) -> None:
        if value is None:
            return
        out.append(f"{'met   ' if ok else 'MISSED'} {label}: {shown}")

    for size, s in summary.items():
        if size == "receiver":
            continue
        if "load_objects_per_second" in s:
            v = s["load_objects_per_second"]["median"]
            check(f"full load >= 10,000 objects/s at {size}", v, v >= 10_000, f"{v:,.0f}/s")
        if "load_vs_naive" in s:
            v = s["load_vs_naive"]["median"]
            check(f"full load >= 20x the naive baseline at {size}", v, v >= 20, f"{v:.1f}x")
    if "1m" in summary:
        s = summary["1m"]
        if "load_peak_mb" in s:
            v = s["load_peak_mb"]["max"]
            check("peak memory <= 1 GB at 1M charges", v, v <= 1024, f"{v:,.0f} MB")
        if "incremental_share_of_full" in s:
            v = s["incremental_share_of_full"]["median"]
            check("incremental <= 2% of the full load at 1M", v, v <= 0.02, f"{v:.2%}")
        if "dbt_seconds" in s:
            v = s["dbt_seconds"]["median"]
            check("dbt build <= 30 s at 1M (the first)", v, v <= 30, f"{v:.1f} s")
        if "dbt_after_incremental_seconds" in s:
            v = s["dbt_after_incremental_seconds"]["median"]
            check("dbt build <= 30 s at 1M (after the incremental run)", v, v <= 30,
                  f"{v:.1f} s")  # fmt: skip
    growth = summary.get("1m", {})
    for key, how in (("incremental_vs_10k", "side by side"),
                     ("incremental_vs_10k_runs", "the same run's")):  # fmt: skip
        if key in growth:
            # Side by side when the benchmark ran both sizes' incremental runs back to back;
            # otherwise each run's, its sizes minutes apart.
            v = growth[key]["median"] - 1
            check(f"incremental at 1M within 20% of 10k ({how})", v, v <= 0.20, f"{v:+.0%}")
            break
    for size, s in summary.items():
        if size != "receiver" and "webhook_mart_s" in s:
            v = s["webhook_mart_s"]["median"]
            check(f"webhook to mart <= 60 s at {size}", v, v <= 60, f"{v:.1f} s")
    if "receiver" in summary:
        rec = summary["receiver"]
        v = rec["events_per_second"]["median"]
        check("receiver >= 2,000 events/s", v, v >= 2_000, f"{v:,.0f}/s")
        v = rec["p99_ms"]["median"]
        check("receiver p99 <= 50 ms", v, v <= 50, f"{v:.1f} ms")
    return out


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10k,100k,1m", help=f"of {', '.join(SIZES)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"of {', '.join(PARTS)}")
    parser.add_argument(
        "--baseline-seconds",
        type=float,
        default=60.0,
        help="how long the naive baseline may read (it is ~1,000 objects/s)",
    )
    parser.add_argument(
        "--changes",
        type=int,
        default=375,
        help="sandbox changes before each incremental run (375: ~1,000 objects)",
    )
    parser.add_argument(
        "--reuse-loads",
        action="store_true",
        help="dbt and publish only, on the warehouses the last benchmark's loads left "
        "(to measure a change to the dbt project or the publisher without loading again)",
    )
    parser.add_argument("--receiver-events", type=int, default=20_000)
    parser.add_argument("--receiver-connections", type=int, default=32)
    args = parser.parse_args(argv)
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    args.parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if unknown or args.parts - set(PARTS) or args.runs < 1:
        parser.error(f"sizes are {', '.join(SIZES)}; parts are {', '.join(PARTS)}; runs >= 1")
    if "webhook" in args.parts and "dbt" not in args.parts:
        parser.error("the webhook part needs the dbt part (the marts it measures)")
    if args.reuse_loads:
        if args.parts - {"dbt", "publish"}:
            parser.error("--reuse-loads measures only the dbt and publish parts")
        missing = [str(run_dir(size, run) / "warehouse.duckdb") for size in sizes
                   for run in range(args.runs)
                   if not (run_dir(size, run) / "warehouse.duckdb").exists()]  # fmt: skip
        if missing:
            parser.error(f"--reuse-loads: no warehouse left by a load at {', '.join(missing)}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = BENCH_ROOT / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"date": stamp, "machine": machine(), "command": sys.argv,
                               "sizes": {}}  # fmt: skip
    log(f"benchmarks {', '.join(sizes)} x {args.runs} runs; logs in {logs}")
    try:
        datasets = {}
        for size in sizes:
            dataset = datasets[size] = ensure_dataset(SIZES[size], logs)
            results["sizes"][size] = {"objects": dataset["objects"],
                                      "generator": dataset["generator"], "runs": []}  # fmt: skip
            log(f"{size}: {dataset['objects']:,} objects; generated in "
                f"{dataset['generator'].get('seconds', '?')} s")  # fmt: skip
        # The sizes take turns, run by run: what is compared across sizes (the incremental
        # run at 1M against 10k's) is measured minutes apart, not a size's whole runs apart,
        # on a machine whose speed moves within the hour.
        for run in range(args.runs) if args.parts & LOAD_PARTS else ():
            for size in sizes:
                dataset, block = datasets[size], results["sizes"][size]
                # In the results before its steps: what they measured is kept if one fails.
                measured: dict[str, Any] = {}
                block["runs"].append(measured)
                if args.reuse_loads:
                    measured.update(reused(size, run, dataset, logs))
                else:
                    # Every run loads the same generated history, from a sandbox started
                    # afresh.
                    with sandbox(SIZES[size], logs) as url:
                        loads(size, run, url, dataset, args, logs, measured)
                # The sandbox holds the whole account in memory: the builds run without it.
                builds(size, run, dataset, args, logs, measured)
        if "webhook" in args.parts:
            for size in sizes:
                last = run_dir(size, args.runs - 1)
                orders = datasets[size]["folder"] / "careportals_orders.csv"
                with sandbox(SIZES[size], logs, history=False) as url:
                    results["sizes"][size]["webhook"] = webhook_to_mart(
                        size, url, last, orders, args.runs, logs
                    )
        if "incremental" in args.parts and {"10k", "1m"} <= set(sizes):
            # After the webhook part, whose job would otherwise build these loads' changes.
            results["incremental_side_by_side"] = incremental_side_by_side(datasets, args, logs)
        if "receiver" in args.parts:
            template = dataset_dir(BENCH_ROOT / "sandbox", SEED, SIZES[sizes[0]])
            results["receiver"] = receiver_runs(
                args.runs, template / "objects" / "charges.jsonl", args, logs
            )
    except StepFailedError as err:
        # What was measured before the failure is kept and reported all the same.
        log(f"benchmark failed: {err}")
        results["failed"] = str(err)
    summary = summarise(results)
    results["summary"] = summary
    out = BENCH_ROOT / f"results-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(report(summary))
    print()
    print("\n".join(targets(summary)))
    print(f"\nRaw figures: {out}")
    return 1 if "failed" in results else 0


if __name__ == "__main__":
    raise SystemExit(main())
