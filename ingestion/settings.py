"""Ingestion settings, read from the environment (entry points load `.env` first).

`STRIPE_API_KEY` unset means sandbox mode: the pipeline reads the project's own Stripe sandbox
and its CarePortals export. With a key set, nothing falls back to the sandbox.

Several accounts: `STRIPE_API_KEY` may hold several keys, comma-separated, one per
independent account; `STRIPE_CONNECTED_ACCOUNTS` names connected accounts the first key (a
Connect platform's) reads with the `Stripe-Account` header, or is `all` to read every one
`/v1/accounts` lists; `STRIPE_INCLUDE_PLATFORM=0` skips the platform's own objects.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from ingestion.stripe_source import STRIPE_LISTS
from sandbox.server import SANDBOX_API_KEY
from sandbox.settings import PROJECT_ROOT, SandboxSettings

STRIPE_API_BASE = "https://api.stripe.com"
TRUE_WORDS = {"1", "true", "yes", "on"}
# The CarePortals export formats ingestion.careportals reads.
ORDERS_SUFFIXES = (".csv", ".parquet", ".jsonl", ".ndjson", ".json")


class Secret:
    """A value that never shows itself in repr, str, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable and the fix."""


@dataclass(frozen=True)
class StripeSettings:
    api_key: Secret  # the first key (the platform's, with connected accounts)
    api_base: str
    sandbox: bool
    orders_path: Path | None
    sandbox_settings: SandboxSettings = field(default_factory=SandboxSettings)
    max_retries: int = 5
    timeout_seconds: float = 30.0
    # The first retry's delay, doubled on each further retry (capped at 8 s).
    backoff_seconds: float = 0.5
    # Sandbox mode without an explicit STRIPE_API_BASE starts the sandbox server when needed.
    autostart_sandbox: bool = False
    # The Stripe lists to read (the others are kept as empty tables).
    lists: tuple[str, ...] = tuple(STRIPE_LISTS)
    # For Stripe-compatible servers without /v1/account.
    account_id: str | None = None
    # Read every list in full instead of from the `created` cursor.
    full_refresh: bool = False
    # Read the Events feed (changes to objects created before the last run).
    events: bool = True
    # Re-read the mutable objects created in this many days (a safety net; 0 = off).
    relist_days: int = 0
    # Every key, one per independent account (the first is `api_key`).
    api_keys: tuple[Secret, ...] = ()
    # Connected accounts the first key reads (Stripe-Account), and whether to discover them all.
    connected_accounts: tuple[str, ...] = ()
    discover_connected: bool = False
    # Read the first key's own account too (a platform may hold no payments itself).
    include_platform: bool = True
    # Re-read only the objects created in [start, end) (unix seconds); cursors stay put.
    backfill: tuple[int, int] | None = None
    # A load is committed once it has read this many objects (at the end of the list it is
    # in): what a killed run may read again, against a fixed cost per load (0 = each list).
    objects_per_commit: int = 50_000

    @classmethod
    def from_env(cls) -> StripeSettings:
        env = os.environ
        keys = _split(env.get("STRIPE_API_KEY", ""))
        key = keys[0] if keys else ""
        sandbox = SandboxSettings.from_env()
        orders = env.get("CAREPORTALS_ORDERS_PATH", "").strip()
        connected = env.get("STRIPE_CONNECTED_ACCOUNTS", "").strip()
        if not keys and sandbox.accounts and "STRIPE_CONNECTED_ACCOUNTS" not in env:
            # The sandbox was asked for connected accounts: read them.
            connected = "all"
        problem = _connected_problem(connected)
        if problem:
            raise ConfigurationError(problem)
        common = {
            "backfill": parse_backfill(env.get("STRIPE_BACKFILL", "")),
            "connected_accounts": () if connected == "all" else tuple(_split(connected)),
            "discover_connected": connected == "all",
            "include_platform": env.get("STRIPE_INCLUDE_PLATFORM", "1").strip().lower()
            in TRUE_WORDS,
            "lists": _lists_from_env(env.get("STRIPE_LISTS", "")),
            "account_id": env.get("STRIPE_ACCOUNT_ID", "").strip() or None,
            "full_refresh": env.get("STRIPE_FULL_REFRESH", "").strip().lower() in TRUE_WORDS,
            "max_retries": int(env.get("STRIPE_MAX_RETRIES", cls.max_retries)),
            "backoff_seconds": float(env.get("STRIPE_RETRY_BACKOFF_SECONDS", cls.backoff_seconds)),
            "events": env.get("STRIPE_EVENTS", "1").strip().lower() in TRUE_WORDS,
            "relist_days": int_env(env, "STRIPE_RELIST_DAYS", 0),
            "objects_per_commit": int_env(env, "STRIPE_OBJECTS_PER_COMMIT", cls.objects_per_commit),
            "orders_path": Path(orders) if orders else None,
            "sandbox_settings": sandbox,
        }
        if key:
            if not all(k.startswith(("sk_", "rk_")) for k in keys):
                raise ConfigurationError(
                    "STRIPE_API_KEY does not look like a Stripe secret or restricted key "
                    "(sk_... or rk_...); unset it to use the sandbox."
                )
            return cls(
                api_key=Secret(key),
                api_keys=tuple(Secret(k) for k in keys),
                api_base=env.get("STRIPE_API_BASE", STRIPE_API_BASE).rstrip("/"),
                sandbox=False,
                **common,
            )
        return cls(
            api_key=Secret(SANDBOX_API_KEY),
            api_keys=(Secret(SANDBOX_API_KEY),),
            api_base=env.get("STRIPE_API_BASE", f"http://127.0.0.1:{sandbox.port}").rstrip("/"),
            sandbox=True,
            autostart_sandbox="STRIPE_API_BASE" not in env,
            **common,
        )


def parse_backfill(raw: str) -> tuple[int, int] | None:
    """`2024-01-01..2024-02-01` (UTC dates, the end excluded) as unix seconds, or None."""
    raw = raw.strip()
    if not raw:
        return None
    start, sep, end = raw.partition("..")
    try:
        if not sep:
            raise ValueError
        first, last = (
            int(dt.datetime.strptime(day.strip(), "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp())
            for day in (start, end)
        )
    except ValueError:
        raise ConfigurationError(
            f"STRIPE_BACKFILL must be two UTC dates, e.g. 2024-01-01..2024-02-01 (the end "
            f"excluded), not {raw!r}."
        ) from None
    if last <= first:
        raise ConfigurationError(f"STRIPE_BACKFILL ends before it starts: {raw!r}.")
    return first, last


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _connected_problem(raw: str) -> str | None:
    if raw in ("", "all"):
        return None
    wrong = [a for a in _split(raw) if not a.startswith("acct_")]
    if wrong:
        return (
            f"STRIPE_CONNECTED_ACCOUNTS must be 'all' or account ids (acct_...), not "
            f"{', '.join(repr(a) for a in wrong)}."
        )
    return None


def int_env(env: os._Environ | dict, name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}.")
    return int(raw)


def _lists_from_env(raw: str) -> tuple[str, ...]:
    if not raw.strip():
        return tuple(STRIPE_LISTS)
    chosen = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in chosen if name not in STRIPE_LISTS]
    if unknown:
        raise ConfigurationError(
            f"STRIPE_LISTS names unknown lists {', '.join(unknown)}; "
            f"known: {', '.join(STRIPE_LISTS)}."
        )
    return chosen


def pipelines_dir() -> Path:
    """Where dlt keeps its local working state (restorable from the warehouse)."""
    return Path(os.environ.get("DLT_PIPELINES_DIR", PROJECT_ROOT / ".state" / "dlt"))


_WHOLE_NUMBERS = ("STRIPE_MAX_RETRIES", "STRIPE_RELIST_DAYS", "SANDBOX_SEED", "SANDBOX_CHARGES",
                  "SANDBOX_PORT", "SANDBOX_ACCOUNTS", "WEBHOOK_PORT",
                  "WEBHOOK_MAX_BODY_BYTES")  # fmt: skip
_NUMBERS = ("STRIPE_RETRY_BACKOFF_SECONDS",)


def configuration_problems(env: os._Environ | dict | None = None) -> list[str]:
    """Every problem with the ingestion settings, one message each, none naming a secret."""
    env = os.environ if env is None else env
    problems = []
    keys = _split(env.get("STRIPE_API_KEY", ""))
    key = keys[0] if keys else ""
    for n, one in enumerate(keys, 1):
        if not one.startswith(("sk_", "rk_")):
            which = f"key {n} of STRIPE_API_KEY" if len(keys) > 1 else "STRIPE_API_KEY"
            problems.append(
                f"{which} does not look like a Stripe secret or restricted key (sk_... or "
                "rk_...); unset it to use the sandbox."
            )
    if len(set(keys)) < len(keys):
        problems.append("STRIPE_API_KEY lists the same key twice.")
    connected = _connected_problem(env.get("STRIPE_CONNECTED_ACCOUNTS", "").strip())
    if connected:
        problems.append(connected)
    base = env.get("STRIPE_API_BASE", "").strip()
    if base and not base.startswith(("http://", "https://")):
        problems.append(f"STRIPE_API_BASE must be an http(s) URL, not {base!r}.")
    for name in _WHOLE_NUMBERS:
        raw = env.get(name, "").strip()
        if raw and not raw.isdigit():
            problems.append(f"{name} must be a whole number, not {raw!r}.")
    for name in _NUMBERS:
        raw = env.get(name, "").strip()
        try:
            if raw and float(raw) < 0:
                raise ValueError
        except ValueError:
            problems.append(f"{name} must be a number of seconds, not {raw!r}.")
    try:
        _lists_from_env(env.get("STRIPE_LISTS", ""))
    except ConfigurationError as err:
        problems.append(str(err))
    try:
        parse_backfill(env.get("STRIPE_BACKFILL", ""))
    except ConfigurationError as err:
        problems.append(str(err))
    orders = env.get("CAREPORTALS_ORDERS_PATH", "").strip()
    if key and not orders:
        problems.append(
            "CAREPORTALS_ORDERS_PATH is not set: point it at the CarePortals orders export "
            "(CSV, Parquet or JSON lines)."
        )
    elif orders and not Path(orders).is_file():
        problems.append(f"CAREPORTALS_ORDERS_PATH: {orders} is not a readable file.")
    elif orders and not os.access(orders, os.R_OK):
        problems.append(f"CAREPORTALS_ORDERS_PATH: {orders} cannot be read (permissions).")
    elif orders and Path(orders).suffix.lower() not in ORDERS_SUFFIXES:
        problems.append(
            f"CAREPORTALS_ORDERS_PATH: {orders} is not a .csv, .parquet or .jsonl export."
        )
    problems += webhook_secrets(env.get("STRIPE_WEBHOOK_SECRET", ""))[1]
    return problems


def webhook_secrets(raw: str) -> tuple[tuple[str, ...], list[str]]:
    """The signing secrets of STRIPE_WEBHOOK_SECRET (several while rotating), and what is
    wrong with them."""
    secrets = tuple(s.strip() for s in raw.split(",") if s.strip())
    problems = [
        f"STRIPE_WEBHOOK_SECRET: secret {n} does not start with whsec_ (the endpoint's "
        "signing secret, not an API key)."
        for n, secret in enumerate(secrets, 1)
        if not secret.startswith("whsec_")
    ]
    return secrets, problems


def configuration_warnings(env: os._Environ | dict | None = None) -> list[str]:
    """Settings that work but are unwise."""
    env = os.environ if env is None else env
    keys = _split(env.get("STRIPE_API_KEY", ""))
    return [
        f"{f'Key {n} of STRIPE_API_KEY' if len(keys) > 1 else 'STRIPE_API_KEY'} is a live "
        "secret key, which can also change the account: the pipeline only reads, so create a "
        "restricted key (rk_live_...) with read access and use that instead (see README, A "
        "real Stripe account)."
        for n, key in enumerate(keys, 1)
        if key.startswith("sk_live_")
    ]
