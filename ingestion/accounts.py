"""The Stripe accounts one run reads, and loading each on its own.

An account is read with a key: its own (one key per independent account), or the platform's
with the `Stripe-Account` header (a Connect platform reading its connected accounts, listed
in configuration or discovered through `/v1/accounts`). Raw rows, cursors and state are all
keyed by account id, so accounts never mix; an account that fails (a revoked key, an
account the platform lost access to, an API that keeps failing) is reported and the others
are loaded all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingestion.stripe_api import StripeApi, StripeApiError

if TYPE_CHECKING:
    from ingestion.settings import Secret, StripeSettings


@dataclass(frozen=True)
class StripeAccount:
    """One account to read: with key number `key_number`, through `stripe_account` if set."""

    key: Secret = field(repr=False)
    key_number: int
    stripe_account: str | None = None

    @property
    def label(self) -> str:
        """How messages name the account before its id is known (never the key itself)."""
        if self.stripe_account:
            return f"connected account {self.stripe_account} (through key {self.key_number})"
        return f"the account of key {self.key_number}"


@dataclass
class AccountOutcome:
    """What one account's load did: the rows it loaded per table, or why it failed."""

    label: str
    account_id: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "account": self.account_id or self.label,
            "outcome": "failed" if self.failed else "loaded",
            "rows": dict(sorted(self.rows.items())),
            **({"error": self.error} if self.error else {}),
        }


def error_message(err: BaseException) -> str:
    """The first line of the root cause's message (StripeApi messages never hold a key)."""
    cause = err
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause).splitlines()[0] if str(cause) else ""
    return f"{type(cause).__name__}: {text}"[:1000]


def discover_connected(api: StripeApi) -> list[str]:
    """Every connected account `/v1/accounts` lists for the platform `api` reads."""
    return [account["id"] for page in api.iter_pages("accounts") for account in page]


def stripe_accounts(
    settings: StripeSettings, open_api: Callable[[StripeAccount], StripeApi]
) -> tuple[list[StripeAccount], list[AccountOutcome]]:
    """The accounts to read, and the failures met while finding them (a discovery the
    platform key may not make)."""
    keys = settings.api_keys or (settings.api_key,)
    accounts: list[StripeAccount] = []
    failures: list[AccountOutcome] = []
    platform = StripeAccount(keys[0], 1)
    if settings.include_platform:
        accounts.append(platform)
    connected = list(settings.connected_accounts)
    if settings.discover_connected:
        try:
            with open_api(platform) as api:
                connected += [a for a in discover_connected(api) if a not in connected]
        except StripeApiError as err:
            failures.append(
                AccountOutcome(
                    "the connected accounts of key 1 (GET /v1/accounts)", error=error_message(err)
                )
            )
    accounts += [StripeAccount(keys[0], 1, account_id) for account_id in connected]
    accounts += [StripeAccount(key, n) for n, key in enumerate(keys[1:], 2)]
    return accounts, failures


def each_account(
    accounts: list[StripeAccount],
    open_api: Callable[[StripeAccount], StripeApi],
    outcomes: list[AccountOutcome],
    seen: set[str] | None = None,
) -> Iterator[tuple[StripeApi, AccountOutcome]]:
    """Each account's checked API and its outcome, for the caller to load; the API is
    closed after. A failure while opening it is recorded in `outcomes` and the next account
    follows; the caller records a failure of its own load with `AccountOutcome.error`."""
    seen = set() if seen is None else seen
    for account in accounts:
        outcome = AccountOutcome(account.label)
        outcomes.append(outcome)
        try:
            api = open_api(account)
        except Exception as err:
            outcome.error, outcome.exception = error_message(err), err
            continue
        try:
            outcome.account_id = api.account_id
            if outcome.account_id in seen:
                outcome.error = (
                    f"{account.label} reads {outcome.account_id}, which this run already "
                    "loaded: list each account once."
                )
                continue
            seen.add(outcome.account_id)
            yield api, outcome
        finally:
            api.close()


class AccountsFailedError(RuntimeError):
    """Some Stripe accounts failed to load (the others were loaded). One line, each failed
    account with its error."""

    def __init__(self, outcomes: list[AccountOutcome]) -> None:
        failed = [o for o in outcomes if o.failed]
        details = "; ".join(f"{o.account_id or o.label}: {o.error}" for o in failed)
        super().__init__(
            f"{len(failed)} of {len(outcomes)} Stripe accounts failed to load: {details}"
        )
        self.outcomes = outcomes


def raise_if_all_failed(outcomes: list[AccountOutcome]) -> None:
    """Nothing loaded: a single account's own error, or every account's."""
    if outcomes and all(o.failed for o in outcomes):
        if len(outcomes) == 1 and outcomes[0].exception is not None:
            raise outcomes[0].exception
        raise AccountsFailedError(outcomes)
