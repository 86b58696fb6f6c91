"""What the sandbox's health-care business sells, in which currencies, at what Stripe pricing."""

from __future__ import annotations

from dataclasses import dataclass

# Minor-unit exponents of the currencies the sandbox charges in.
CURRENCY_EXPONENT = {"usd": 2, "eur": 2, "gbp": 2, "cad": 2, "jpy": 0}

# Customer currencies and how common they are.
CURRENCY_WEIGHTS = {"usd": 70, "eur": 10, "gbp": 7, "cad": 8, "jpy": 5}

# The account settles in these currencies; anything else is converted to USD at the rate
# given here (settlement minor units per presentment minor unit).
SETTLEMENT_CURRENCIES = {"usd", "eur", "gbp", "jpy"}
CONVERSION_TO_USD = {"cad": 0.73}

# Stripe's standard pricing by settlement currency: percentage in basis points and a fixed
# fee in the settlement currency's minor units; international cards and currency conversion
# add to the percentage. Stripe keeps its fee when a payment is refunded.
FEE_PERCENT_BPS = {"usd": 290, "eur": 290, "gbp": 290, "jpy": 360}
FEE_FIXED_MINOR = {"usd": 30, "eur": 25, "gbp": 20, "jpy": 0}
INTERNATIONAL_CARD_BPS = 150
CURRENCY_CONVERSION_BPS = 100
DISPUTE_FEE_MINOR = {"usd": 1500, "eur": 1500, "gbp": 1500, "jpy": 2000}

ACCOUNT_COUNTRY = "US"
CARD_COUNTRIES = {
    "usd": [("US", 92), ("MX", 4), ("GB", 2), ("CA", 2)],
    "eur": [("DE", 40), ("FR", 30), ("NL", 15), ("US", 15)],
    "gbp": [("GB", 90), ("IE", 10)],
    "cad": [("CA", 95), ("US", 5)],
    "jpy": [("JP", 95), ("US", 5)],
}
CARD_BRANDS = [("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5)]
CARD_FUNDING = [("credit", 60), ("debit", 37), ("prepaid", 3)]


@dataclass(frozen=True)
class Offering:
    """A CarePortals product and its Stripe prices (unit amounts in USD cents)."""

    key: str
    name: str
    category: str
    description: str
    usd_amount: int
    interval: str | None  # None for one-time purchases


OFFERINGS = [
    Offering("consult", "Telehealth consultation", "consultation", "Video visit", 7900, None),
    Offering("labs", "Comprehensive lab panel", "lab_tests", "At-home lab kit", 14900, None),
    Offering("vitd", "Vitamin D3 supplement", "supplements", "90-day supply", 2400, None),
    Offering("rx_refill", "Prescription refill", "pharmacy", "Refill and shipping", 4500, None),
    Offering("glp1_m", "Weight care program", "weight_loss", "Monthly program", 29900, "month"),
    Offering("glp1_y", "Weight care program", "weight_loss", "Annual program", 299000, "year"),
    Offering("hair_m", "Hair regrowth plan", "hair", "Monthly treatment", 3900, "month"),
    Offering("skin_m", "Prescription skincare", "dermatology", "Monthly formula", 5900, "month"),
    Offering("skin_y", "Prescription skincare", "dermatology", "Annual formula", 59000, "year"),
]

# Presentment price per currency, derived from the USD price and rounded the way a merchant
# would price (whole units; JPY in whole yen at about 150 per dollar).
_PRICE_FACTOR = {"usd": 1.0, "eur": 0.93, "gbp": 0.79, "cad": 1.37, "jpy": 1.5}


def unit_amount(offering: Offering, currency: str) -> int:
    """The offering's price in the currency's minor units."""
    if currency == "usd":
        return offering.usd_amount
    raw = offering.usd_amount * _PRICE_FACTOR[currency]
    if CURRENCY_EXPONENT[currency] == 0:
        return round(raw / 10.0) * 10
    return round(raw / 100.0) * 100 - 1  # e.g. 27.99 EUR


FAILURES = [
    # (failure_code, decline_code, message, weight)
    ("card_declined", "insufficient_funds", "Your card has insufficient funds.", 40),
    ("card_declined", "generic_decline", "Your card was declined.", 30),
    ("card_declined", "do_not_honor", "Your card was declined.", 10),
    ("expired_card", None, "Your card has expired.", 10),
    ("incorrect_cvc", None, "Your card's security code is incorrect.", 7),
    ("processing_error", None, "An error occurred while processing your card.", 3),
]

REFUND_REASONS = [("requested_by_customer", 70), ("duplicate", 10), ("fraudulent", 5), (None, 15)]
DISPUTE_REASONS = ["fraudulent", "product_not_received", "subscription_canceled", "duplicate"]

FIRST_NAMES = [
    "Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Mateo", "Yuki", "Hana",
    "Oliver", "Chloe", "Ethan", "Isla", "Leo", "Amara", "Ines", "Jonas", "Priya", "Omar",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Garcia", "Nguyen", "Müller", "Tanaka", "Dubois", "Rossi", "Kowalski", "Brown",
    "Silva", "Okafor", "Johansson", "Patel", "Kim", "Walsh", "Haddad", "Novak", "Cohen",
]  # fmt: skip


@dataclass(frozen=True)
class CouponOffer:
    """A coupon subscribers can hold: a percentage or a fixed amount off, once or forever."""

    id: str
    name: str
    duration: str  # once | forever
    percent_off: float | None = None
    amount_off: int | None = None  # minor units of `currency`
    currency: str | None = None


COUPONS = [
    CouponOffer("CARE20", "Care plan: 20% off", "forever", percent_off=20.0),
    CouponOffer("WELCOME50", "Welcome: 50% off the first payment", "once", percent_off=50.0),
    CouponOffer("LOYAL5", "USD 5 off every payment", "forever", amount_off=500, currency="usd"),
]
