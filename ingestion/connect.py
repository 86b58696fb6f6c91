"""Opening the sources a load reads: the Stripe API (checked first) and the orders export."""

from __future__ import annotations

from pathlib import Path

from ingestion.accounts import StripeAccount
from ingestion.settings import ConfigurationError, StripeSettings
from ingestion.stripe_api import StripeApi
from sandbox import launcher


def open_stripe(settings: StripeSettings, account: StripeAccount | None = None) -> StripeApi:
    """A Stripe API reader whose key and server were checked with one request.

    `account` picks one of several accounts (another key, or a connected account through
    the first key); the default is the first key's own account. In sandbox mode the sandbox
    server is started if it is not running. A bad key or an unreachable server fails here,
    before anything is extracted or written.
    """
    base = settings.api_base
    if settings.autostart_sandbox:
        base = launcher.ensure_running(settings.sandbox_settings)
    account = account or StripeAccount(settings.api_key, 1)
    single = account.key_number == 1 and not account.stripe_account
    api = StripeApi(
        account.key,
        base,
        stripe_account=account.stripe_account,
        # STRIPE_ACCOUNT_ID names the first key's account (servers without /v1/account).
        account_id=settings.account_id if single else None,
        max_retries=settings.max_retries,
        timeout=settings.timeout_seconds,
        backoff_base=settings.backoff_seconds,
    )
    try:
        api.account()
    except BaseException:
        api.close()
        raise
    return api


def orders_path(settings: StripeSettings) -> Path:
    """The CarePortals export to load: CAREPORTALS_ORDERS_PATH, or the sandbox's own."""
    if settings.orders_path:
        return settings.orders_path
    if settings.sandbox:
        return launcher.orders_file(settings.sandbox_settings)
    raise ConfigurationError(
        "CAREPORTALS_ORDERS_PATH is not set: point it at the CarePortals orders export "
        "(CSV, Parquet or JSON lines)."
    )
