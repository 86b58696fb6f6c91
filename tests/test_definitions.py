"""The Dagster code location: the asset graph a user sees, pools, job and schedule."""

from __future__ import annotations

import inspect
import subprocess
import sys
from functools import cached_property

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.definitions import DbtCli, defs


def test_asset_graph_runs_from_raw_tables_through_dbt_to_the_sink():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"stripe/charges", "stripe/balance_transactions", "careportals/orders"} <= keys
    assert {
        "staging/stg_stripe__charges",
        "marts/fct_charges",
        "marts/revenue_daily",
        "published_marts",
    } <= keys
    charges_deps = graph.get(dg.AssetKey(["staging", "stg_stripe__charges"])).parent_keys
    assert dg.AssetKey(["stripe", "charges"]) in charges_deps
    assert graph.get(dg.AssetKey(["marts", "fct_charges"])).group_name == "marts"
    sink_deps = graph.get(dg.AssetKey("published_marts")).parent_keys
    assert dg.AssetKey(["marts", "careportals_charges_export"]) in sink_deps


def test_every_asset_that_opens_duckdb_is_in_the_duckdb_pool():
    for assets_def in defs.assets:
        assert assets_def.node_def.pool == "duckdb", assets_def.node_def.name


def test_dbt_tests_are_asset_checks():
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "unique_fct_charges_charge_id" in checks
    assert {
        "assert_refunds_sum_to_charge_amount_refunded",
        "assert_revenue_matches_charges_and_refunds",
        "assert_balance_net_is_amount_less_fee",
    } <= checks


def test_the_dbt_resource_leaves_out_only_steps_dagster_dbt_still_has():
    """DbtCli overrides two of DbtCliResource's own steps; an upgrade of dagster-dbt that
    renamed them would silently bring their cost back."""
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    assert callable(inspect.getattr_static(DbtCliResource, "_initialize_dbt_core_adapter"))
    dbt = defs.resources["dbt"]
    assert isinstance(dbt, DbtCli)
    # The version it reports is the one the dbt executable it runs prints.
    printed = subprocess.run(
        [dbt.dbt_executable, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert f"installed: {dbt._cli_version}" in printed
    assert dbt._initialize_dbt_core_adapter(["build"]) is None


def test_the_incremental_schedule_runs_the_whole_job():
    schedule = defs.resolve_schedule_def("incremental_load")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.job_name == "full_pipeline"


STARTER = """
import sys, time
from pathlib import Path
from ingestion.pipelines import careportals_pipeline, stripe_pipeline
go, database, folder = (Path(arg) for arg in sys.argv[1:])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
stripe_pipeline(database, folder)
careportals_pipeline(database, folder)
"""


def test_processes_loading_the_definitions_at_once_on_a_new_checkout_all_start(tmp_path):
    """Dagster's webserver and daemon (or test workers) each make the dlt pipelines as they
    load the definitions; on a checkout with no dlt state yet, none may fail for the
    others making the same working folder."""
    go, folder = tmp_path / "go", tmp_path / "dlt"
    args = [sys.executable, "-c", STARTER, str(go), str(tmp_path / "w.duckdb"), str(folder)]
    starters = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    for starter in starters:
        assert starter.stdout.readline() == "ready\n"
    go.touch()
    for starter in starters:
        _, err = starter.communicate(timeout=120)
        assert starter.returncode == 0, err[-2000:]
    assert (folder / "stripe" / "state.json").exists()


def test_a_pipelines_folder_that_cannot_be_made_is_a_clear_configuration_error(tmp_path):
    import pytest

    from ingestion.pipelines import stripe_pipeline
    from ingestion.settings import ConfigurationError

    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigurationError, match="DLT_PIPELINES_DIR: cannot keep dlt's"):
        stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "a_file" / "dlt")
