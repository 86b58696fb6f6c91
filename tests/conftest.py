"""Shared fixtures: a small generated Stripe account served by the sandbox on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.server import SANDBOX_API_KEY, SandboxServer, SandboxState
from sandbox.store import ensure_dataset, object_files

SEED = 7
CHARGES = 400


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_dataset(tmp_path_factory.mktemp("sandbox"), SEED, CHARGES)


@pytest.fixture(scope="session")
def truth(dataset: Path) -> dict:
    return json.loads((dataset / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def sandbox(dataset: Path):
    with SandboxServer(SandboxState(dataset)) as server:
        yield server


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pipeline_env(tmp_path: Path, sandbox: SandboxServer, dataset: Path):
    """Environment for a pipeline run against the sandbox, into a fresh warehouse."""
    with pytest.MonkeyPatch.context() as mp:
        set_pipeline_env(mp, tmp_path, sandbox.url, dataset)
        yield mp


def set_pipeline_env(mp: pytest.MonkeyPatch, workdir: Path, api_base: str, dataset: Path) -> None:
    mp.setenv("STRIPE_API_KEY", SANDBOX_API_KEY)
    mp.setenv("STRIPE_API_BASE", api_base)
    mp.setenv("STRIPE_MAX_RETRIES", "1")
    mp.setenv("CAREPORTALS_ORDERS_PATH", str(dataset / "careportals_orders.csv"))
    mp.setenv("DUCKDB_PATH", str(workdir / "warehouse.duckdb"))
    mp.setenv("DLT_PIPELINES_DIR", str(workdir / "dlt"))
    mp.setenv("WORKBOOK_PATH", str(workdir / "marts.xlsx"))
    mp.setenv("WEBHOOK_LANDING_DIR", str(workdir / "landing"))
    mp.delenv("GOOGLE_SHEETS_SPREADSHEET_ID", raising=False)


def read_objects(dataset: Path, list_name: str) -> list[dict]:
    """The generated objects of one list, as the sandbox serves them."""
    objs = []
    for path in object_files(dataset, list_name):
        with open(path) as f:
            objs += [json.loads(line) for line in f]
    return objs


DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"


def run_dbt(
    database: Path, target: Path, *args: str, project: Path = DBT_PROJECT, fails: bool = False
) -> str:
    """dbt on `database`, as a user runs it (from `project`, a copy of the dbt project for a
    check that changes it); its output. It must succeed, or with `fails`, fail."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), *args, "--project-dir", str(project),
         "--profiles-dir", str(project), "--target-path", str(target)],
        env={**os.environ, "DUCKDB_PATH": str(database)},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert (done.returncode != 0) == fails, done.stdout[-3000:]
    return done.stdout


@contextmanager
def held_by_another_process(database: Path) -> Iterator[None]:
    """The DuckDB file `database` open for writing in another process (which holds its lock)
    for the duration of the block; the process is gone after it."""
    hold = f"import duckdb, time; c = duckdb.connect({str(database)!r}); print('ok', flush=True)"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout.readline().strip() == b"ok"
        yield
    finally:
        holder.kill()
        holder.wait()
