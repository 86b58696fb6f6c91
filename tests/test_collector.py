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
