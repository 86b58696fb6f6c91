"""The cyclic garbage collector's settings during a load (`ingestion.collector`)."""

from __future__ import annotations

import gc

import pytest

from ingestion import collector


def test_paused_turns_the_collector_off_and_back_on_after_an_error():
    assert gc.isenabled()
    with collector.paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("the server went away")
    assert gc.isenabled()


def test_paused_leaves_a_collector_turned_off_by_someone_else_off():
    gc.disable()
    try:
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_set_aside_are_handed_back_and_a_freeze_made_before_is_kept():
    assert gc.get_freeze_count() == 0
    with collector.long_lived_set_aside():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), collector.long_lived_set_aside():
        raise RuntimeError("the load failed")
    assert gc.get_freeze_count() == 0
    gc.freeze()  # as a server that forks would
    try:
        frozen = gc.get_freeze_count()
        with collector.long_lived_set_aside():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_stripe_load_runs_with_the_long_lived_objects_set_aside(tmp_path, monkeypatch):
    """`run_stripe_account` runs dlt's whole load (extract, normalise, load) with them set
    aside, and hands them back after."""
    import dlt

    from ingestion import pipelines

    during: list[int] = []

    def run(self, *args, **kwargs):
        during.append(gc.get_freeze_count())

    monkeypatch.setattr(dlt.Pipeline, "run", run)
    monkeypatch.setattr(pipelines, "lists_to_append", lambda *a: frozenset())
    monkeypatch.setattr("ingestion.load_history.rows_by_table", lambda p: {})

    class Api:
        account_id = "acct_1"

    class Settings:
        objects_per_commit, lists, full_refresh, events = 1_000, ("customers",), False, True
        relist_days, backfill = 0, None

    pipeline = pipelines.stripe_pipeline(tmp_path / "w.duckdb", tmp_path / "dlt")
    pipelines.run_stripe_account(pipeline, Api, Settings())
    assert during and during[0] > 0 and gc.get_freeze_count() == 0
