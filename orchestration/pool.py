"""Keeping the `duckdb` pool usable: claims left behind by runs that died are released.

A run killed mid-step (SIGKILL, a closed terminal, a timeout) never frees its claim on the
pool, and every later run would wait for it forever. Before `make run` starts, claims held
by finished runs, and by `make run` runs whose process is gone, are released; a claim held
by a live run is reported instead of waited on in silence.
"""

import os
import socket

import dagster as dg

POOL = "duckdb"
HOST_TAG = "stripe_elt/host"
PID_TAG = "stripe_elt/pid"


class PoolBusyError(RuntimeError):
    """Another live run holds the DuckDB pool."""


def run_tags() -> dict[str, str]:
    """Tags that let a later run tell whether this process is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_dead(run: dg.DagsterRun) -> bool:
    """A run of `make run` on this host whose process no longer exists."""
    if run.tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in run.tags:
        return False
    return not _process_alive(int(run.tags[PID_TAG]))


def release_stale_claims(instance: dg.DagsterInstance, pool: str = POOL) -> list[str]:
    """Free the pool claims of finished or dead runs; raise if a live run holds it.

    Returns the ids of the runs whose claims were released.
    """
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    run_ids = {s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}
    released, busy = [], []
    for run_id in sorted(run_ids):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished and _is_dead(run):
            instance.report_run_failed(run, "The process running it is gone; pool released.")
            run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            released.append(run_id)
        else:
            busy.append(run)
    if busy:
        holder = busy[0]
        raise PoolBusyError(
            f"Run {holder.run_id} ({holder.job_name}, {holder.status.value}) holds or waits "
            "for the DuckDB pool. Wait for it to finish, or if it died, terminate it in the "
            "Dagster UI (Runs > Terminate) and run again."
        )
    return released
