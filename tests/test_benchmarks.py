"""`make bench` works end to end: a small run of every part, on a sandbox of its own.

The figures themselves are not asserted (targets live in the benchmark's report); what is
checked is that each part measured what it says it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.settings import PROJECT_ROOT


def test_a_small_benchmark_run_reports_every_part_it_ran(tmp_path: Path):
    env = {**os.environ, "BENCH_DIR": str(tmp_path)}
    args = [sys.executable, "-m", "benchmarks", "--sizes", "2k", "--runs", "1",
            "--parts", "load,naive,incremental,dbt,publish,webhook,receiver",
            "--baseline-seconds", "2", "--changes", "20", "--receiver-events", "400",
            "--receiver-connections", "8"]  # fmt: skip
    done = subprocess.run(
        args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "full load, objects/s" in done.stdout
    assert "receiver >= 2,000 events/s" in done.stdout

    (results_file,) = tmp_path.glob("results-*.json")
    results = json.loads(results_file.read_text())
    (run,) = results["sizes"]["2k"]["runs"]
    # The full load read every object the sandbox serves (events come with the changes).
    objects = sum(
        sum(1 for _ in path.open("rb"))
        for path in (tmp_path / "sandbox").glob("*/objects/*.jsonl")
        if path.stem != "events"
    )
    assert run["load"]["objects"] >= objects
    assert 0 < run["naive"]["objects"] <= run["load"]["objects"]
    assert run["incremental"]["changed_objects"] > 0
    assert 0 < run["incremental"]["objects"] < run["load"]["objects"]
    # Both builds were timed, and the machine's pace was taken before the first.
    assert run["dbt"]["seconds"] > 0 and run["dbt_after_incremental"]["seconds"] > 0
    assert run["pace"]["fields"] > 0
    assert "machine's pace before the first build: Python, s" in done.stdout
    # The default tabs went to the fake Sheets API; a sent payment reached the mart and tab.
    assert run["publish"]["requests"] > 0 and run["publish"]["tabs"] > 0
    webhook = [r for r in results["sizes"]["2k"]["webhook"] if r["payments"]]
    assert webhook and all(r["in_mart"] and r["in_tab"] for r in webhook)
    (receiver,) = results["receiver"]
    assert receiver["landed"] == 400


def test_reuse_loads_refuses_load_parts_and_missing_warehouses(tmp_path: Path):
    env = {**os.environ, "BENCH_DIR": str(tmp_path)}

    def bench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchmarks", "--sizes", "2k", "--runs", "1", *args],
            env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    loading = bench("--parts", "load,dbt", "--reuse-loads")
    assert loading.returncode == 2
    assert "--reuse-loads measures only the dbt and publish parts" in loading.stderr

    missing = bench("--parts", "dbt", "--reuse-loads")
    assert missing.returncode == 2
    assert f"no warehouse left by a load at {tmp_path / 'runs' / '2k-0'}" in missing.stderr
    assert not list(tmp_path.glob("results-*.json"))


def test_the_benchmark_builds_the_models_as_the_pipeline_does():
    from benchmarks.__main__ import DBT_BUILD_ARGS as DBT_BUILD
    from orchestration.definitions import DBT_BUILD_ARGS

    assert DBT_BUILD == DBT_BUILD_ARGS


def test_webhook_runs_are_timed_only_where_the_payment_was_seen():
    from benchmarks.__main__ import summarise

    def hook(mart_s: float, paid: bool, in_tab: bool = True) -> dict:
        return {"events": 9, "payments": int(paid), "landed_s": 0.05, "mart_s": mart_s,
                "tab_s": mart_s + 5, "in_mart": paid, "in_tab": paid and in_tab}  # fmt: skip

    hooks = [hook(99.0, paid=False), hook(30.0, paid=True), hook(40.0, paid=True, in_tab=False)]
    summary = summarise(
        {"sizes": {"10k": {"runs": [], "objects": 1, "generator": 1, "webhook": hooks}}}
    )["10k"]
    assert summary["webhook_landed_s"]["n"] == 3
    assert (summary["webhook_mart_s"]["median"], summary["webhook_mart_s"]["n"]) == (35.0, 2)
    assert (summary["webhook_tab_s"]["median"], summary["webhook_tab_s"]["n"]) == (35.0, 1)


def test_the_growth_target_reads_the_incremental_runs_taken_side_by_side():
    from benchmarks.__main__ import report, summarise, targets

    def run(incremental: float) -> dict:
        return {"load": {"seconds": 100.0, "objects": 1, "objects_per_second": 1.0,
                         "peak_mb": 1.0},
                "incremental": {"seconds": incremental, "changed_objects": 1000}}  # fmt: skip

    block = {"objects": 1, "generator": {}}
    results = {
        "sizes": {
            # Minutes apart, the machine slowed between the sizes: 1.5x.
            "10k": {**block, "runs": [run(1.0), run(1.0), run(1.0)]},
            "1m": {**block, "runs": [run(1.5), run(1.5), run(1.5)]},
        },
        # Seconds apart: 1.1x, 1.0x, 1.3x.
        "incremental_side_by_side": [
            {"seconds": {"10k": 1.0, "1m": 1.1}, "ratio": 1.1},
            {"seconds": {"10k": 1.2, "1m": 1.2}, "ratio": 1.0},
            {"seconds": {"10k": 1.0, "1m": 1.3}, "ratio": 1.3},
        ],
    }
    summary = summarise(results)
    assert summary["1m"]["incremental_vs_10k_runs"]["median"] == 1.5
    assert summary["1m"]["incremental_vs_10k"]["median"] == 1.1
    assert summary["10k"]["incremental_side_by_side_seconds"]["median"] == 1.0
    growth = [line for line in targets(summary) if "within 20% of 10k" in line]
    assert growth == ["met    incremental at 1M within 20% of 10k (side by side): +10%"]

    del results["incremental_side_by_side"]
    growth = [line for line in targets(summarise(results)) if "within 20% of 10k" in line]
    assert growth == ["MISSED incremental at 1M within 20% of 10k (the same run's): +50%"]

    # The report's table gives the incremental run's share of the full load in percent.
    shares = [ln for ln in report(summary).splitlines() if ln.startswith("| incremental / full")]
    assert shares == ["| incremental / full load | 1.00% (1.00-1.00) | 1.50% (1.50-1.50) |"]


def test_the_machines_pace_is_measured_and_reported_beside_the_first_build(tmp_path: Path):
    from benchmarks.__main__ import machine_pace, report, summarise
    from benchmarks.steps import PACE_PYTHON_ROWS

    pace = machine_pace(dict(os.environ), tmp_path / "pace.log")
    assert pace["python_seconds"] > 0 and pace["duckdb_seconds"] > 0
    assert pace["fields"] == PACE_PYTHON_ROWS * 16  # the whole workload, every time

    runs = [{"pace": {**pace, "python_seconds": s}, "dbt": {"seconds": 30.0}}
            for s in (1.0, 1.5, 1.2)]  # fmt: skip
    summary = summarise({"sizes": {"1m": {"objects": 1, "generator": {}, "runs": runs}}})
    lines = report(summary).splitlines()
    assert "| machine's pace before the first build: Python, s | 1.20 (1.00-1.50) |" in lines
    duckdb = f"{pace['duckdb_seconds']:.2f} ({pace['duckdb_seconds']:.2f}-"
    assert any(ln.startswith("| machine's pace before the first build: DuckDB, s | " + duckdb)
               for ln in lines)  # fmt: skip


def test_a_sandbox_gone_or_refusing_an_advance_fails_the_step_with_its_reason():
    """A StepFailedError, which the benchmark catches to write and report what it measured
    before; any other error would lose the run's figures."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import pytest

    from benchmarks.__main__ import NO_SANDBOX, StepFailedError, advance_one_day

    with pytest.raises(StepFailedError, match="did not answer POST /v1/test_helpers/advance"):
        advance_one_day(NO_SANDBOX, 375)

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self):
            body = b'{"error": {"message": "seconds must be positive"}}'
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(StepFailedError, match=r"with 400: .*seconds must be positive"):
            advance_one_day(url, 375)
    finally:
        server.shutdown()
        server.server_close()
