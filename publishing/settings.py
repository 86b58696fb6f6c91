"""Which marts are published to which tabs, and where."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# mart (table in the marts schema) -> tab name
# The first four are the CarePortals workbook's own tabs, names and spelling kept.
DEFAULT_TABS = (
    ("careportals_charges_export", "Charges"),
    ("careportals_refunds_export", "Refunds"),
    ("careportals_payments_succeeded", "payment_succesful"),
    ("careportals_refunds_created", "refund.created"),
    ("revenue_daily", "Revenue daily"),
    ("revenue_monthly", "Revenue monthly"),
    ("revenue_monthly_all_accounts", "Revenue monthly, all accounts"),
    ("fct_disputes", "Disputes"),
    ("refund_metrics_monthly", "Refund metrics"),
    ("payments_monthly", "Payments monthly"),
    ("mrr_monthly", "MRR monthly"),
    ("order_reconciliation", "Order reconciliation"),
    ("dim_customers", "Customers"),
)
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class PublishSettings:
    tabs: tuple[tuple[str, str], ...] = DEFAULT_TABS
    workbook_path: Path = PROJECT_ROOT / "output" / "stripe_marts.xlsx"
    spreadsheet_id: str | None = None
    service_account_file: Path | None = None
    service_account_json: str | None = None
    mask_emails: bool = False

    @classmethod
    def from_env(cls) -> PublishSettings:
        env = os.environ
        tabs = DEFAULT_TABS
        if env.get("PUBLISH_MARTS", "").strip():
            # "fct_charges:Charges,revenue_daily:Revenue daily"
            pairs = [item.split(":", 1) for item in env["PUBLISH_MARTS"].split(",") if item.strip()]
            tabs = tuple((p[0].strip(), (p[1] if len(p) > 1 else p[0]).strip()) for p in pairs)
        account_file = env.get("GOOGLE_SERVICE_ACCOUNT_FILE", "").strip()
        return cls(
            tabs=tabs,
            workbook_path=Path(env.get("WORKBOOK_PATH") or cls.workbook_path),
            spreadsheet_id=env.get("GOOGLE_SHEETS_SPREADSHEET_ID", "").strip() or None,
            service_account_file=Path(account_file) if account_file else None,
            service_account_json=env.get("GOOGLE_SERVICE_ACCOUNT_JSON", "").strip() or None,
            mask_emails=env.get("PUBLISH_MASK_EMAILS", "").strip().lower() in _TRUE,
        )


def configuration_problems(env: os._Environ | dict | None = None) -> list[str]:
    """Every problem with the publishing settings, one message each."""
    env = os.environ if env is None else env
    problems = []
    sheet = env.get("GOOGLE_SHEETS_SPREADSHEET_ID", "").strip()
    key_file = env.get("GOOGLE_SERVICE_ACCOUNT_FILE", "").strip()
    key_json = env.get("GOOGLE_SERVICE_ACCOUNT_JSON", "").strip()
    if sheet and not (key_file or key_json):
        problems.append(
            "GOOGLE_SHEETS_SPREADSHEET_ID is set but no service-account key is: set "
            "GOOGLE_SERVICE_ACCOUNT_FILE (or GOOGLE_SERVICE_ACCOUNT_JSON), or unset the id to "
            "publish to the local workbook."
        )
    if key_file and not os.access(key_file, os.R_OK):
        problems.append(f"GOOGLE_SERVICE_ACCOUNT_FILE: {key_file} is not a readable file.")
    for item in filter(str.strip, env.get("PUBLISH_MARTS", "").split(",")):
        mart = item.split(":", 1)[0].strip()
        if not mart.replace("_", "").isalnum():
            problems.append(f"PUBLISH_MARTS: {item.strip()!r} is not mart[:tab].")
    return problems
