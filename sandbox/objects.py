"""Builders for Stripe API objects with Stripe's full field set and nesting.

Every builder returns a plain dict shaped like the API's JSON (the field sets follow
Stripe's published example objects, nulls included), so the pipeline meets in the sandbox
what it meets in production. Builders take only what varies; the rest is Stripe's default.
"""

from __future__ import annotations

import functools
from typing import Any

API_VERSION = "2025-09-30.clover"


def _address(country: str | None = None) -> dict[str, Any]:
    return {
        "city": None,
        "country": country,
        "line1": None,
        "line2": None,
        "postal_code": None,
        "state": None,
    }


def customer(
    *, id: str, created: int, email: str, name: str, currency: str, country: str
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "customer",
        "address": _address(country),
        "balance": 0,
        "created": created,
        "currency": currency,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": id[-8:].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product(*, id: str, created: int, name: str, description: str, category: str) -> dict[str, Any]:
    return {
        "id": id,
        "object": "product",
        "active": True,
        "created": created,
        "default_price": None,
        "description": description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {"category": category},
        "name": name,
        "package_dimensions": None,
        "shippable": False,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": created,
        "url": None,
    }


def price(
    *,
    id: str,
    created: int,
    product: str,
    currency: str,
    unit_amount: int,
    interval: str | None,
    interval_count: int = 1,
    nickname: str | None = None,
) -> dict[str, Any]:
    recurring = None
    if interval:
        recurring = {
            "interval": interval,
            "interval_count": interval_count,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }
    return {
        "id": id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": nickname,
        "product": product,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if interval else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def card_details(
    *, brand: str, funding: str, country: str, last4: str, fingerprint: str, amount: int
) -> dict[str, Any]:
    card = _CARD.copy()  # the fields in Stripe's order; those that vary set below
    card["amount_authorized"] = amount
    card["brand"] = brand
    card["country"] = country
    card["fingerprint"] = fingerprint
    card["funding"] = funding
    card["last4"] = last4
    card["network"] = brand
    card["overcapture"] = {"maximum_amount_capturable": amount, "status": "unavailable"}
    return {"card": card, "type": "card"}


# The builders of the objects made by the million (charges, their card details, payment
# intents) copy a template of Stripe's fields in order and set what varies: a dict copied
# whole is several times cheaper to make than one built key by key. Nested parts that never
# vary are shared by every object (nothing changes them in place; a change replaces them).
_CARD: dict[str, Any] = {
    "amount_authorized": None,
    "authorization_code": None,
    "brand": None,
    "checks": {
        "address_line1_check": None,
        "address_postal_code_check": "pass",
        "cvc_check": "pass",
    },
    "country": None,
    "exp_month": 8,
    "exp_year": 2030,
    "extended_authorization": {"status": "disabled"},
    "fingerprint": None,
    "funding": None,
    "incremental_authorization": {"status": "unavailable"},
    "installments": None,
    "last4": None,
    "mandate": None,
    "multicapture": {"status": "unavailable"},
    "network": None,
    "network_token": {"used": False},
    "network_transaction_id": None,
    "overcapture": None,
    "regulated_status": "unregulated",
    "three_d_secure": None,
    "transaction_link_id": None,
    "wallet": None,
}


def charge(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    customer: str | None,
    email: str | None,
    name: str | None,
    description: str,
    metadata: dict[str, str],
    status: str,
    captured: bool,
    balance_transaction: str | None,
    payment_intent: str | None,
    payment_method: str,
    payment_method_details: dict[str, Any],
    failure_code: str | None = None,
    failure_message: str | None = None,
    decline_code: str | None = None,
    amount_refunded: int = 0,
    refunds: list[dict[str, Any]] | None = None,
    disputed: bool = False,
) -> dict[str, Any]:
    succeeded = status == "succeeded"
    refunds = refunds or []
    ch = _CHARGE.copy()
    ch["id"] = id
    ch["amount"] = amount
    ch["amount_captured"] = amount if captured else 0
    ch["amount_refunded"] = amount_refunded
    ch["balance_transaction"] = balance_transaction
    ch["billing_details"] = {
        "address": _address_of(payment_method_details["card"]["country"]),
        "email": email,
        "name": name,
        "phone": None,
        "tax_id": None,
    }
    ch["captured"] = captured
    ch["created"] = created
    ch["currency"] = currency
    ch["customer"] = customer
    ch["description"] = description
    ch["disputed"] = disputed
    ch["failure_code"] = failure_code
    ch["failure_message"] = failure_message
    ch["metadata"] = metadata
    ch["outcome"] = _outcome(succeeded, decline_code)
    ch["paid"] = succeeded
    ch["payment_intent"] = payment_intent
    ch["payment_method"] = payment_method
    ch["payment_method_details"] = payment_method_details
    ch["receipt_email"] = email
    ch["receipt_url"] = f"https://pay.stripe.com/receipts/payment/{id}" if succeeded else None
    ch["refunded"] = succeeded and amount_refunded == amount
    ch["refunds"] = {
        "object": "list",
        "data": refunds[:10],
        "has_more": len(refunds) > 10,
        "total_count": len(refunds),
        "url": f"/v1/charges/{id}/refunds",
    }
    ch["status"] = status
    return ch


_CHARGE: dict[str, Any] = dict.fromkeys(
    (
        "id", "object", "amount", "amount_captured", "amount_refunded", "application",
        "application_fee", "application_fee_amount", "balance_transaction", "billing_details",
        "calculated_statement_descriptor", "captured", "created", "currency", "customer",
        "description", "disputed", "failure_balance_transaction", "failure_code",
        "failure_message", "fraud_details", "livemode", "metadata", "on_behalf_of", "outcome",
        "paid", "payment_intent", "payment_method", "payment_method_details", "receipt_email",
        "receipt_number", "receipt_url", "refunded", "refunds", "review", "shipping", "source",
        "source_transfer", "statement_descriptor", "statement_descriptor_suffix", "status",
        "transfer_data", "transfer_group",
    )
)  # fmt: skip
_CHARGE.update(
    {
        "object": "charge",
        "calculated_statement_descriptor": "CAREPORTALS",
        "fraud_details": {},
        "livemode": False,
    }
)


@functools.cache
def _address_of(country: str | None) -> dict[str, Any]:
    """The one address of a country (shared: see `_CARD`)."""
    return _address(country)


@functools.cache
def _outcome(succeeded: bool, decline_code: str | None) -> dict[str, Any]:
    return {
        "advice_code": None,
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "approved_by_network" if succeeded else "declined_by_network",
        "reason": decline_code,
        "risk_level": "normal",
        "risk_score": 20,
        "seller_message": "Payment complete." if succeeded else "The bank declined the payment.",
        "type": "authorized" if succeeded else "issuer_declined",
    }


def refund(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    charge: str,
    payment_intent: str | None,
    balance_transaction: str | None,
    reason: str | None,
    status: str,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": charge,
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": payment_intent,
        "payment_method": None,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def balance_transaction(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    fee: int,
    fee_details: list[dict[str, Any]],
    exchange_rate: float | None,
    source: str,
    type: str,
    reporting_category: str,
    description: str | None,
    available_on: int,
    status: str,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": available_on,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": exchange_rate,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": reporting_category,
        "source": source,
        "status": status,
        "type": type,
    }


def fee_detail(*, amount: int, currency: str, description: str) -> dict[str, Any]:
    return {
        "amount": amount,
        "application": None,
        "currency": currency,
        "description": description,
        "type": "stripe_fee",
    }


def payment_intent(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    customer: str | None,
    description: str,
    metadata: dict[str, str],
    status: str,
    latest_charge: str | None,
    payment_method: str | None,
    amount_received: int,
    capture_method: str = "automatic",
    last_payment_error: dict[str, Any] | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    pi = _PAYMENT_INTENT.copy()
    pi["id"] = id
    pi["amount"] = amount
    pi["amount_capturable"] = amount if status == "requires_capture" else 0
    pi["amount_details"] = {"tip": {}}
    pi["amount_received"] = amount_received
    pi["capture_method"] = capture_method
    pi["client_secret"] = f"{id}_secret_sandbox"
    pi["created"] = created
    pi["currency"] = currency
    pi["customer"] = customer
    pi["description"] = description
    pi["last_payment_error"] = last_payment_error
    pi["latest_charge"] = latest_charge
    pi["metadata"] = metadata
    pi["payment_method"] = payment_method
    pi["receipt_email"] = email
    pi["status"] = status
    return pi


_PAYMENT_INTENT: dict[str, Any] = dict.fromkeys(
    (
        "id", "object", "amount", "amount_capturable", "amount_details", "amount_received",
        "application", "application_fee_amount", "automatic_payment_methods", "canceled_at",
        "cancellation_reason", "capture_method", "client_secret", "confirmation_method",
        "created", "currency", "customer", "customer_account", "description",
        "excluded_payment_method_types", "last_payment_error", "latest_charge", "livemode",
        "managed_payments", "metadata", "next_action", "on_behalf_of", "payment_method",
        "payment_method_configuration_details", "payment_method_options",
        "payment_method_types", "processing", "receipt_email", "review", "setup_future_usage",
        "shipping", "source", "statement_descriptor", "statement_descriptor_suffix", "status",
        "transfer_data", "transfer_group",
    )
)  # fmt: skip
_PAYMENT_INTENT.update(
    {
        "object": "payment_intent",
        "confirmation_method": "automatic",
        "livemode": False,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
    }
)


def payment_error(*, code: str, decline_code: str | None, message: str, charge: str) -> dict:
    return {
        "advice_code": None,
        "charge": charge,
        "code": code,
        "decline_code": decline_code,
        "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        "message": message,
        "network_advice_code": None,
        "network_decline_code": None,
        "param": None,
        "payment_method": None,
        "type": "card_error",
    }


def dispute(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    charge: str,
    payment_intent: str | None,
    reason: str,
    status: str,
    balance_transactions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": balance_transactions,
        "charge": charge,
        "created": created,
        "currency": currency,
        "enhanced_eligibility_types": [],
        "evidence": {
            "access_activity_log": None,
            "billing_address": None,
            "cancellation_policy": None,
            "cancellation_policy_disclosure": None,
            "cancellation_rebuttal": None,
            "customer_communication": None,
            "customer_email_address": None,
            "customer_name": None,
            "customer_purchase_ip": None,
            "customer_signature": None,
            "duplicate_charge_documentation": None,
            "duplicate_charge_explanation": None,
            "duplicate_charge_id": None,
            "product_description": None,
            "receipt": None,
            "refund_policy": None,
            "refund_policy_disclosure": None,
            "refund_refusal_explanation": None,
            "service_date": None,
            "service_documentation": None,
            "shipping_address": None,
            "shipping_carrier": None,
            "shipping_date": None,
            "shipping_documentation": None,
            "shipping_tracking_number": None,
            "uncategorized_file": None,
            "uncategorized_text": None,
        },
        "evidence_details": {
            "due_by": created + 21 * 86400,
            "enhanced_eligibility": {},
            "has_evidence": status in ("won", "lost", "under_review"),
            "past_due": False,
            "submission_count": 1 if status in ("won", "lost", "under_review") else 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "payment_method_details": {"card": {"brand": "visa", "case_type": "chargeback"}},
        "reason": reason,
        "status": status,
    }


def subscription_item(
    *,
    id: str,
    created: int,
    subscription: str,
    price_obj: dict[str, Any],
    quantity: int,
    period_start: int,
    period_end: int,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": created,
        "current_period_end": period_end,
        "current_period_start": period_start,
        "discounts": [],
        "metadata": {},
        "plan": _plan_from_price(price_obj),
        "price": price_obj,
        "quantity": quantity,
        "subscription": subscription,
        "tax_rates": [],
    }


def coupon(
    *,
    id: str,
    created: int,
    name: str,
    duration: str,
    percent_off: float | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration_in_months: int | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": created,
        "currency": currency,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": None,
        "metadata": {},
        "name": name,
        "percent_off": percent_off,
        "redeem_by": None,
        "times_redeemed": 0,
        "valid": True,
    }


def discount(
    *,
    id: str,
    customer: str,
    subscription: str,
    coupon: str,
    start: int,
    end: int | None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "discount",
        "checkout_session": None,
        "customer": customer,
        "customer_account": None,
        "end": end,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": coupon, "type": "coupon"},
        "start": start,
        "subscription": subscription,
        "subscription_item": None,
    }


def _plan_from_price(p: dict[str, Any]) -> dict[str, Any]:
    recurring = p["recurring"] or {}
    return {
        "id": p["id"],
        "object": "plan",
        "active": True,
        "amount": p["unit_amount"],
        "amount_decimal": p["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": p["created"],
        "currency": p["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count", 1),
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": p["nickname"],
        "product": p["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription(
    *,
    id: str,
    created: int,
    customer: str,
    currency: str,
    items: list[dict[str, Any]],
    status: str,
    start_date: int,
    trial_start: int | None,
    trial_end: int | None,
    canceled_at: int | None,
    ended_at: int | None,
    latest_invoice: str | None,
    cancellation_reason: str | None = None,
    discounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start_date,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic", "updated_at": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": canceled_at,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "reason": cancellation_reason,
        },
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": discounts or [],
        "ended_at": ended_at,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={id}",
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": start_date,
        "status": status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": trial_start,
    }


def invoice_line(
    *,
    id: str,
    invoice: str,
    subscription: str,
    subscription_item: str,
    price_obj: dict[str, Any],
    quantity: int,
    amount: int,
    currency: str,
    period_start: int,
    period_end: int,
    discount_amounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": f"{quantity} x {price_obj['nickname']}",
        "discount_amounts": discount_amounts or [],
        "discountable": True,
        "discounts": [d["discount"] for d in discount_amounts or []],
        "invoice": invoice,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription,
                "subscription_item": subscription_item,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period_end, "start": period_start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price_obj["id"], "product": price_obj["product"]},
            "type": "price_details",
            "unit_amount_decimal": price_obj["unit_amount_decimal"],
        },
        "quantity": quantity,
        "taxes": [],
    }


def invoice(
    *,
    id: str,
    number: str,
    created: int,
    customer: str,
    email: str,
    name: str,
    currency: str,
    subscription: str,
    lines: list[dict[str, Any]],
    status: str,
    amount_due: int,
    amount_paid: int,
    attempt_count: int,
    billing_reason: str,
    period_start: int,
    period_end: int,
    paid_at: int | None,
    discount_amounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    discounted = sum(d["amount"] for d in discount_amounts or [])
    subtotal = amount_due + discounted
    return {
        "id": id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "CarePortals Health",
        "account_tax_ids": None,
        "amount_due": amount_due,
        "amount_overpaid": 0,
        "amount_paid": amount_paid,
        "amount_remaining": amount_due - amount_paid,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "auto_advance": status == "open",
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "created": created,
        "currency": currency,
        "custom_fields": None,
        "customer": customer,
        "customer_account": None,
        "customer_address": None,
        "customer_email": email,
        "customer_name": name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [d["discount"] for d in discount_amounts or []],
        "due_date": None,
        "effective_at": created,
        "ending_balance": 0,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/{id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/{id}/pdf",
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "total_count": len(lines),
            "url": f"/v1/invoices/{id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None if status == "paid" else created + 3 * 86400,
        "number": number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription},
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": status,
        "status_transitions": {
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": paid_at,
            "voided_at": None,
        },
        "subscription": subscription,
        "subtotal": subtotal,
        "subtotal_excluding_tax": subtotal,
        "test_clock": None,
        "total": amount_due,
        "total_discount_amounts": discount_amounts or [],
        "total_excluding_tax": amount_due,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": created,
    }


def account(*, id: str, created: int) -> dict[str, Any]:
    return {
        "id": id,
        "object": "account",
        "business_profile": {
            "mcc": "8099",
            "name": "CarePortals Health",
            "product_description": "Telehealth programs, prescriptions and lab tests",
            "support_email": "support@careportals.example",
            "url": "https://careportals.example",
        },
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "country": "US",
        "created": created,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "finance@careportals.example",
        "metadata": {},
        "payouts_enabled": True,
        "settings": {"dashboard": {"display_name": "CarePortals", "timezone": "Etc/UTC"}},
        "type": "standard",
    }
