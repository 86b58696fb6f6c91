"""Configuration is checked before a run: one clear message per problem, all at once, no
secret in any of them; a live secret key is warned about."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ingestion.settings import configuration_problems, configuration_warnings
from publishing.settings import configuration_problems as publishing_problems

ROOT = Path(__file__).resolve().parents[1]


def test_a_good_configuration_has_no_problem(tmp_path: Path):
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id\n")
    env = {"STRIPE_API_KEY": "rk_live_abc", "CAREPORTALS_ORDERS_PATH": str(orders),
           "STRIPE_WEBHOOK_SECRET": "whsec_a, whsec_b", "STRIPE_MAX_RETRIES": "3"}  # fmt: skip
    assert configuration_problems(env) == []
    assert publishing_problems(env) == []
    assert configuration_warnings(env) == []
    assert configuration_problems({}) == []  # the sandbox needs nothing


def test_every_problem_gets_its_own_message(tmp_path: Path):
    secret = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
    env = {
        "STRIPE_API_KEY": secret,
        "STRIPE_API_BASE": "api.stripe.com",
        "STRIPE_MAX_RETRIES": "many",
        "STRIPE_RETRY_BACKOFF_SECONDS": "-1",
        "STRIPE_LISTS": "charges,payouts",
        "STRIPE_WEBHOOK_SECRET": "whsec_ok," + secret,
        "SANDBOX_PORT": "12a",
    }
    problems = configuration_problems(env)
    expected = ["STRIPE_API_BASE", "STRIPE_MAX_RETRIES", "SANDBOX_PORT",
                "STRIPE_RETRY_BACKOFF_SECONDS", "STRIPE_LISTS", "CAREPORTALS_ORDERS_PATH",
                "STRIPE_WEBHOOK_SECRET: secret 2"]  # fmt: skip
    assert len(problems) == len(expected)
    for problem, name in zip(problems, expected, strict=True):
        assert problem.startswith(name), problem
    assert not any(secret in problem for problem in problems)
    (tmp_path / "orders.txt").write_text("x")
    for path, words in [(tmp_path / "missing.csv", "not a readable file"),
                        (tmp_path / "orders.txt", "not a .csv")]:  # fmt: skip
        [problem] = configuration_problems({"CAREPORTALS_ORDERS_PATH": str(path)})
        assert words in problem
    sheet = publishing_problems({"GOOGLE_SHEETS_SPREADSHEET_ID": "1abc"})
    assert len(sheet) == 1 and "GOOGLE_SERVICE_ACCOUNT_FILE" in sheet[0]
    missing_key = publishing_problems({"GOOGLE_SERVICE_ACCOUNT_FILE": str(tmp_path / "k.json")})
    assert missing_key == [
        f"GOOGLE_SERVICE_ACCOUNT_FILE: {tmp_path / 'k.json'} is not a readable file."
    ]


def test_a_live_secret_key_is_warned_about_and_a_restricted_one_is_not():
    [warning] = configuration_warnings({"STRIPE_API_KEY": "sk_live_abc"})
    assert "rk_live_" in warning and "sk_live_abc" not in warning
    assert configuration_warnings({"STRIPE_API_KEY": "rk_live_abc"}) == []


def test_make_run_lists_every_problem_and_runs_nothing(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "STRIPE_API_KEY": "sk_live_recognisable_0000",
           "STRIPE_MAX_RETRIES": "x", "GOOGLE_SHEETS_SPREADSHEET_ID": "1abc",
           "DUCKDB_PATH": str(tmp_path / "w.duckdb"), "HOME": str(tmp_path)}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "orchestration.run"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3  # retries, orders file, Google key
    assert "recognisable" not in result.stdout + result.stderr
    assert not (tmp_path / "w.duckdb").exists()
