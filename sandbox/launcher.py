"""Start the sandbox server in its own process, or find the one already running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sandbox.settings import PROJECT_ROOT, SandboxSettings
from sandbox.store import dataset_dir, ensure_dataset


class SandboxError(RuntimeError):
    pass


def _serve_command(settings: SandboxSettings) -> list[str]:
    return [
        sys.executable, "-m", "sandbox", "serve", "--seed", str(settings.seed),
        "--charges", str(settings.charges), "--port", str(settings.port),
        "--accounts", str(settings.accounts),
        "--data-dir", str(settings.data_dir),
    ]  # fmt: skip


def _dataset_key(settings: SandboxSettings) -> tuple:
    return settings.data_dir, settings.seed, settings.charges, settings.accounts


def _folder(settings: SandboxSettings) -> Path:
    return dataset_dir(*_dataset_key(settings))


def _health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ensure_running(settings: SandboxSettings, timeout: float = 120.0) -> str:
    """The sandbox's base URL, starting a server for the configured dataset if none answers.

    The server runs detached (it outlives this process, so the Dagster UI can materialize
    again); its log is `<data_dir>/server.log`.
    """
    url = f"http://127.0.0.1:{settings.port}"
    folder = ensure_dataset(*_dataset_key(settings))
    health = _health(url)
    if health is None:
        log_path = settings.data_dir / "server.log"
        with open(log_path, "ab") as log:
            subprocess.Popen(
                _serve_command(settings), cwd=PROJECT_ROOT, stdout=log, stderr=log,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while health is None:
            if time.monotonic() > deadline:
                raise SandboxError(f"The Stripe sandbox did not start on {url}; see {log_path}")
            time.sleep(0.2)
            health = _health(url)
    if health.get("dataset") != folder.name:
        raise SandboxError(
            f"Port {settings.port} serves sandbox dataset {health.get('dataset')!r}, not "
            f"{folder.name!r}: stop that server or set SANDBOX_PORT to another port."
        )
    return url


def orders_file(settings: SandboxSettings) -> Path:
    """The sandbox's CarePortals export, generated with its dataset."""
    folder = ensure_dataset(*_dataset_key(settings))
    return Path(folder) / "careportals_orders.csv"


def dataset_name(settings: SandboxSettings) -> str:
    """The name of the configured dataset (format version, seed and size)."""
    return _folder(settings).name


def ground_truth_path(settings: SandboxSettings) -> Path:
    return _folder(settings) / "ground_truth.json"


def start_for_run(settings: SandboxSettings):
    """Start the sandbox for one run; returns a function that stops it again, or None when a
    sandbox was already serving (it is left running)."""
    url = f"http://127.0.0.1:{settings.port}"
    if _health(url) is not None:
        ensure_running(settings)
        return None
    ensure_dataset(*_dataset_key(settings))
    process = subprocess.Popen(
        _serve_command(settings), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _health(url) is None:
        if process.poll() is not None:
            raise SandboxError(
                f"The Stripe sandbox could not start on {url}: "
                f"{process.stderr.read().decode(errors='replace').strip()[-500:]}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise SandboxError(f"The Stripe sandbox did not start on {url}")
        time.sleep(0.1)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()

    return stop
