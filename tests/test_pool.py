"""A run that died holding the DuckDB pool does not block every later run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from orchestration.pool import HOST_TAG, PID_TAG, PoolBusyError, release_stale_claims, run_tags

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def instance(tmp_path: Path):
    project_config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    overrides = {"concurrency": project_config["concurrency"]}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as inst:
        inst.event_log_storage.initialize_concurrency_limit_to_default("duckdb")
        yield inst


def started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    run = instance.create_run_for_job(
        job_def=dg.GraphDefinition(name="full_pipeline", node_defs=[]).to_job(), tags=tags
    )
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None, level="debug", user_message="", run_id=run.run_id,
            timestamp=0.0, dagster_event=dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
            ),
        )
    )  # fmt: skip
    instance.event_log_storage.claim_concurrency_slot("duckdb", run.run_id, "stripe_raw")
    return instance.get_run_by_id(run.run_id)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_killed_make_run_releases_its_claim_and_is_marked_failed(instance):
    tags = {**run_tags(), PID_TAG: str(dead_pid())}
    run = started_run(instance, tags)
    assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots

    assert release_stale_claims(instance) == [run.run_id]
    assert not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_finished_runs_leftover_claim_is_released(instance):
    run = started_run(instance, {})
    instance.report_run_failed(run, "failed without freeing its claim")
    assert release_stale_claims(instance) == [run.run_id]


def test_a_live_run_holding_the_pool_is_reported_not_waited_on(instance):
    run = started_run(instance, {HOST_TAG: run_tags()[HOST_TAG], PID_TAG: run_tags()[PID_TAG]})
    with pytest.raises(PoolBusyError, match=run.run_id):
        release_stale_claims(instance)
    assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
