"""A deterministic generator of a realistic Stripe account for a health-care business.

`generate(seed, charges)` tells the account's story: customers place CarePortals orders and
pay them through payment intents (some fail, some retry, some are only authorised), some
orders are never paid or paid in two charges, some charges belong to no known order, some
are refunded in part or in full (sometimes months later) or disputed, and subscribers are
billed monthly or yearly through invoices. Everything is derived from the seed: the same
seed and size give byte-identical objects.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import gc
import hashlib
import itertools
import operator
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from sandbox import catalog, objects

# The sandbox's "now": fixed so that generated data never depends on the wall clock.
NOW = 1_793_491_200  # 2026-11-01T00:00:00Z
HISTORY_DAYS = 540
DAY = 86_400

OBJECT_TYPES = (
    "customers",
    "products",
    "prices",
    "charges",
    "refunds",
    "balance_transactions",
    "payment_intents",
    "disputes",
    "subscriptions",
    "invoices",
    "coupons",
)

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Each random byte of an id read as one base-62 character (a table lookup, not divisions).
_B62_OF_BYTE = bytes(ord(_B62[b % 62]) for b in range(256))

_ID = operator.itemgetter("id")
_CREATED = operator.itemgetter("created")
# Lines gathered and written to a file at a time by `Written.write`.
_WRITE_LINES = 1_000


# Ids drawn at a time for one prefix (`_drawn_ids`).
_IDS_DRAWN = 4_096


def _drawn_ids(space: str, name: str, length: int, *, hex_ids: bool = False) -> Iterator[str]:
    """The ids of one kind (`name`, and `length` random bytes each) in one id space, one
    after the other: `name` and an underscore, then each byte as one base-62 character, or
    (`hex_ids`) the bytes as hex digits alone. The bytes come from a generator seeded with
    the space, name and length, drawn thousands at a time: an id is a slice of one string
    (0.7 us, against 1.9 us for a digest of the id's number; at 1M charges the story takes
    about 5M ids)."""
    rng = random.Random(f"{space}:{name}:{length}")
    head = "" if hex_ids else f"{name}_"
    width = 2 * length if hex_ids else length
    while True:
        drawn = rng.randbytes(length * _IDS_DRAWN)
        text = drawn.hex() if hex_ids else drawn.translate(_B62_OF_BYTE).decode()
        for start in range(0, len(text), width):
            yield head + text[start : start + width]


def _json_line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


@dataclass
class Dataset:
    """One generated account: its objects by API list name, and the CarePortals orders."""

    seed: int
    charges_requested: int
    account: dict[str, Any]
    objects: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {name: [] for name in OBJECT_TYPES}
    )
    orders: list[dict[str, Any]] = field(default_factory=list)
    # What each subscription was meant to bill and when: the independent source of MRR truth.
    mrr_schedule: list[dict[str, Any]] = field(default_factory=list)
    # The account's clock, and the customers deleted since the history (sandbox.activity).
    now: int = NOW
    deleted_customers: set[str] = field(default_factory=set)
    # How many parts the story was told in (`story_parts`): telling it again needs the same.
    parts: int = 1


@dataclass
class _Card:
    brand: str
    funding: str
    country: str
    last4: str
    fingerprint: str
    payment_method: str


@dataclass
class _Customer:
    obj: dict[str, Any]
    currency: str
    card: _Card

    @property
    def id(self) -> str:
        return self.obj["id"]


@dataclass(frozen=True)
class _Weights:
    """Weighted choices with their cumulative weights, computed once (`_Story.pick`)."""

    keys: tuple
    cumulative: tuple[int, ...]
    total: float

    @classmethod
    def of(cls, weighted: list[tuple[Any, int]] | dict[Any, int]) -> _Weights:
        items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
        cumulative = tuple(itertools.accumulate(w for _, w in items))
        return cls(tuple(k for k, _ in items), cumulative, cumulative[-1] + 0.0)


_CURRENCIES = _Weights.of(catalog.CURRENCY_WEIGHTS)
_CARD_COUNTRIES = {c: _Weights.of(w) for c, w in catalog.CARD_COUNTRIES.items()}
_CARD_BRANDS = _Weights.of(catalog.CARD_BRANDS)
_CARD_FUNDING = _Weights.of(catalog.CARD_FUNDING)
_FAILURES = _Weights.of([(f[:3], f[3]) for f in catalog.FAILURES])
_REFUND_KINDS = _Weights.of([("full", 40), ("partial", 40), ("two_partials", 20)])
_REFUND_REASONS = _Weights.of(catalog.REFUND_REASONS)
_QUANTITIES = _Weights.of([(1, 85), (2, 12), (3, 3)])
_ORDER_CASES = _Weights.of(
    [
        ("paid", 70),
        ("retry", 8),
        ("failed", 5),
        ("unpaid", 4),
        ("uncaptured", 3),
        ("split", 3),
        ("mismatch", 2),
        ("orphan_no_order", 3),
        ("orphan_unknown_order", 2),
    ]
)
_SUBSCRIPTION_STATUSES = _Weights.of(
    [("active", 60), ("trialing", 10), ("canceled", 20), ("past_due", 10)]
)
_DISPUTE_STATUSES = _Weights.of([("lost", 50), ("won", 30), ("needs_response", 20)])


# How many one-off orders a story that writes its objects out makes between two handovers
# (`_Story.settle`): about 50 objects, written while they are still in the cache.
_SETTLE_ORDERS = 16


class Written:
    """A story's objects as their JSON lines, each made as soon as its object is final, for
    a process that only writes the story out (`sandbox.store.write_part`).

    An object is serialised while it is fresh in the cache, its line copied to the end of
    its list's buffer, and both freed: orjson's next line reuses the memory (a part's 800k
    lines, each kept as an object of its own, were 1.2 GB of fresh memory, and orjson's
    output keeps the capacity it grew to: a charge's 2.5 KB line held 8 KB). The lists are
    written from their buffers in their order by Arrow, which gathers the lines a chunk at
    a time, with no Python object per line. Counting the objects for the ground truth is
    done here too, while they are fresh (`observe`: it sees each batch first).
    A charge stays open to one change after it is written, a dispute (`reopen`); every
    other change to an object is made before the story settles it (`_Story.settle`)."""

    def __init__(self, observe: Callable[[str, list[dict[str, Any]]], None]) -> None:
        self.observe = observe
        # Per list, in the order the story told them: the lines one after the other (each
        # with its newline); where each starts and, last, where the buffer ends; each
        # object's time and id.
        self.buffers: dict[str, bytearray] = {name: bytearray() for name in OBJECT_TYPES}
        self.offsets: dict[str, array.array] = {
            name: array.array("q", [0]) for name in OBJECT_TYPES
        }
        self.times: dict[str, array.array] = {name: array.array("q") for name in OBJECT_TYPES}
        self.ids: dict[str, list[str]] = {name: [] for name in OBJECT_TYPES}
        # Per list, the places of its lines in the order they are written (`_sort`).
        self.order: dict[str, Any] = {}
        # The charges a dispute may pick (captured, never refunded), by their place.
        self.disputable: list[int] = []
        self._reopened: dict[int, dict[str, Any]] = {}
        # The charges written again after a dispute: their first places and their lines'.
        self._moved: dict[int, int] = {}

    def take(self, name: str, objs: list[dict[str, Any]]) -> None:
        self.observe(name, objs)
        offsets = self.offsets[name]
        if name == "charges":
            first = len(offsets) - 1
            self.disputable += [
                first + i
                for i, ch in enumerate(objs)
                if ch["captured"] and not ch["amount_refunded"]
            ]
        self.times[name].extend(map(_CREATED, objs))
        self.ids[name] += map(_ID, objs)
        lines = list(map(_json_line, objs))
        buffer = self.buffers[name]
        offsets.extend(
            itertools.islice(itertools.accumulate(map(len, lines), initial=len(buffer)), 1, None)
        )
        for line in lines:
            buffer += line

    def count(self, name: str) -> int:
        return len(self.offsets[name]) - 1

    def reopen(self, index: int) -> dict[str, Any]:
        """The written charge `index` as an object again, written anew by `close`."""
        ch = self._reopened.get(index)
        if ch is None:
            offsets = self.offsets["charges"]
            line = self.buffers["charges"][offsets[index] : offsets[index + 1]]
            ch = self._reopened[index] = orjson.loads(line)
        return ch

    def close(self) -> None:
        """Write the reopened charges anew: each line goes to the end of the buffer, and its
        place is the new line's from then on."""
        if not self._reopened:
            return
        buffer, offsets = self.buffers["charges"], self.offsets["charges"]
        for index, ch in self._reopened.items():
            self._moved[index] = len(offsets) - 1
            buffer += _json_line(ch)
            offsets.append(len(buffer))
        self._reopened.clear()

    def put_in_order(self) -> None:
        """Decide the order each list is written in: newest first, as `_order_by_time` puts
        a story's lists."""
        import pyarrow as pa

        for name in OBJECT_TYPES:
            order = _newest_first(self.times[name], self.ids[name])
            if name == "charges" and self._moved:
                moved = self._moved
                order = pa.array([moved.get(k, k) for k in order.to_pylist()], pa.int64())
            self.order[name] = order
            self.times[name] = array.array("q")
            self.ids[name] = []

    def write(self, name: str, out: BinaryIO) -> None:
        """Write the lines of the list `name` to `out` in the list's order (`_sort`)."""
        import pyarrow as pa

        buffer, offsets = self.buffers[name], self.offsets[name]
        lines = pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)]
        )
        order = self.order[name]
        for start in range(0, len(order), _WRITE_LINES):
            chunk = lines.take(order[start : start + _WRITE_LINES])
            _, ends, joined = chunk.buffers()
            out.write(joined[: memoryview(ends).cast("q")[len(chunk)]])


class _Story:
    def __init__(self, seed: int, charges: int, account_id: str) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        # What ids, order ids and emails are derived from: the seed, or for one part of a
        # story told in parts (`part`), the seed and the part.
        self.id_space = str(seed)
        self.customer_index = itertools.count()
        self.target_charges = charges
        self.counters: dict[str, int] = {}
        # The story's clock: NOW while the history is generated, later once time advances.
        self.now = NOW
        self.start = NOW - HISTORY_DAYS * DAY
        self.data = Dataset(
            seed=seed,
            charges_requested=charges,
            account=objects.account(id=account_id, created=self.start - 30 * DAY),
        )
        self.out = self.data.objects
        self.customers: list[_Customer] = []
        self.prices: dict[tuple[str, str], dict[str, Any]] = {}
        # The ids of each prefix and length still to be given (`new_id`).
        self._ids: dict[tuple[str, int], Iterator[str]] = {}
        # Where final objects go when the story is only written out, not kept (`settle`).
        self.written: Written | None = None

    def settle(self) -> None:
        """Hand every object made since the last call to `written`, if the story writes its
        objects out: called only where every object made so far is final (between orders and
        subscriptions), so that no object changes once it is written."""
        if self.written is None:
            return
        for name, objs in self.out.items():
            if objs:
                self.written.take(name, objs)
                objs.clear()

    def count(self, name: str) -> int:
        """How many objects of the list `name` the story has made."""
        made = len(self.out[name])
        return made if self.written is None else made + self.written.count(name)

    # -- identifiers and random helpers -------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        ids = self._ids.get((prefix, length))
        if ids is None:
            ids = self._ids[(prefix, length)] = _drawn_ids(self.id_space, prefix, length)
        return next(ids)

    def order_id(self) -> str:
        # CarePortals order ids are 24-hex-digit document ids.
        ids = self._ids.get(("order", 12))
        if ids is None:
            ids = self._ids[("order", 12)] = _drawn_ids(self.id_space, "order", 12, hex_ids=True)
        return next(ids)

    def pick(self, weights: _Weights) -> Any:
        # The draw `rng.choices(keys, weights)[0]` makes (one random() and a bisection of the
        # cumulative weights), without its per-call work: millions of draws at 1M charges.
        i = bisect.bisect(
            weights.cumulative, self.rng.random() * weights.total, 0, len(weights.keys) - 1
        )
        return weights.keys[i]

    def moment(self, low: int, high: int) -> int:
        return self.rng.randint(low, max(low, high))

    def enter_part(self, part: int, parts: int) -> None:
        """From here on, tell part `part` of `parts`: its own random draws and ids (the
        catalogue, built before, is the account's and the same in every part), and every
        `parts`-th customer number, so that emails stay unique across the parts."""
        self.rng = random.Random(f"{self.seed}:part:{part}/{parts}")
        self.id_space = f"{self.seed}.{part}/{parts}"
        self.counters = {}
        self._ids = {}
        self.customer_index = itertools.count(part, parts)

    # -- catalogue and customers ----------------------------------------------------------

    def build_catalog(self) -> None:
        created = self.start - 20 * DAY
        for off in catalog.OFFERINGS:
            prod = objects.product(
                id=self.new_id("prod", 14),
                created=created,
                name=off.name,
                description=off.description,
                category=off.category,
            )
            self.out["products"].append(prod)
            for currency in catalog.CURRENCY_EXPONENT:
                p = objects.price(
                    id=self.new_id("price"),
                    created=created,
                    product=prod["id"],
                    currency=currency,
                    unit_amount=catalog.unit_amount(off, currency),
                    interval=off.interval,
                    nickname=f"{off.name} ({off.description})",
                )
                self.prices[(off.key, currency)] = p
                self.out["prices"].append(p)

        for offer in catalog.COUPONS:
            self.out["coupons"].append(
                objects.coupon(
                    id=offer.id,
                    created=created,
                    name=offer.name,
                    duration=offer.duration,
                    percent_off=offer.percent_off,
                    amount_off=offer.amount_off,
                    currency=offer.currency,
                )
            )

    def build_customers(self, count: int) -> None:
        for i in itertools.islice(self.customer_index, count):
            currency = self.pick(_CURRENCIES)
            first = self.rng.choice(catalog.FIRST_NAMES)
            last = self.rng.choice(catalog.LAST_NAMES)
            email = f"{first}.{last}.{i}@example.com".lower().replace("ü", "ue")
            cus_id = self.new_id("cus", 14)
            country = self.pick(_CARD_COUNTRIES[currency])
            card = _Card(
                brand=self.pick(_CARD_BRANDS),
                funding=self.pick(_CARD_FUNDING),
                country=country,
                last4=f"{self.rng.randint(0, 9999):04d}",
                fingerprint=self.new_id("fp", 16)[3:],
                payment_method=self.new_id("pm"),
            )
            obj = objects.customer(
                id=cus_id,
                created=self.moment(self.start - 10 * DAY, NOW - 2 * DAY),
                email=email,
                name=f"{first} {last}",
                currency=currency,
                country=country,
            )
            self.customers.append(_Customer(obj=obj, currency=currency, card=card))
            self.out["customers"].append(obj)

    # -- money -----------------------------------------------------------------------------

    @staticmethod
    def settlement(currency: str, amount: int) -> tuple[str, int, float | None]:
        """Settlement currency, settled amount and exchange rate for a presentment amount."""
        if currency in catalog.SETTLEMENT_CURRENCIES:
            return currency, amount, None
        rate = catalog.CONVERSION_TO_USD[currency]
        return "usd", _round_half_up(amount * rate), rate

    @staticmethod
    def processing_fee(currency: str, settled: int, card_country: str) -> int:
        """Stripe's fee on a charge, in the settlement currency's minor units."""
        converted = currency not in catalog.SETTLEMENT_CURRENCIES
        settle_currency = "usd" if converted else currency
        bps = catalog.FEE_PERCENT_BPS[settle_currency]
        if card_country != catalog.ACCOUNT_COUNTRY:
            bps += catalog.INTERNATIONAL_CARD_BPS
        if converted:
            bps += catalog.CURRENCY_CONVERSION_BPS
        return _round_half_up(settled * bps / 10_000) + catalog.FEE_FIXED_MINOR[settle_currency]

    def add_balance_transaction(self, **fields: Any) -> str:
        txn_id = self.new_id("txn")
        available_on = fields["created"] + 2 * DAY
        self.out["balance_transactions"].append(
            objects.balance_transaction(
                id=txn_id,
                available_on=available_on,
                status="available" if available_on <= self.now else "pending",
                **fields,
            )
        )
        return txn_id

    # -- payments --------------------------------------------------------------------------

    def charge(
        self,
        cus: _Customer,
        *,
        amount: int,
        created: int,
        description: str,
        metadata: dict[str, str],
        pi_id: str | None,
        outcome: str,
    ) -> dict[str, Any]:
        """One charge: `succeeded`, `failed` or `uncaptured` (authorised only)."""
        ch_id = self.new_id("ch")
        card = cus.card
        details = objects.card_details(
            brand=card.brand,
            funding=card.funding,
            country=card.country,
            last4=card.last4,
            fingerprint=card.fingerprint,
            amount=amount,
        )
        failure = None
        txn_id = None
        if outcome == "failed":
            failure = self.pick(_FAILURES)
        elif outcome == "succeeded":
            settle_currency, settled, rate = self.settlement(cus.currency, amount)
            fee = self.processing_fee(cus.currency, settled, card.country)
            txn_id = self.add_balance_transaction(
                created=created,
                amount=settled,
                currency=settle_currency,
                fee=fee,
                fee_details=[
                    objects.fee_detail(
                        amount=fee, currency=settle_currency, description="Stripe processing fees"
                    )
                ],
                exchange_rate=rate,
                source=ch_id,
                type="charge",
                reporting_category="charge",
                description=description,
            )
        obj = objects.charge(
            id=ch_id,
            created=created,
            amount=amount,
            currency=cus.currency,
            customer=cus.id,
            email=cus.obj["email"],
            name=cus.obj["name"],
            description=description,
            metadata=metadata,
            status="failed" if outcome == "failed" else "succeeded",
            captured=outcome == "succeeded",
            balance_transaction=txn_id,
            payment_intent=pi_id,
            payment_method=card.payment_method,
            payment_method_details=details,
            failure_code=failure[0] if failure else None,
            failure_message=failure[2] if failure else None,
            decline_code=failure[1] if failure else None,
        )
        self.out["charges"].append(obj)
        return obj

    def pay(
        self,
        cus: _Customer,
        *,
        amount: int,
        created: int,
        description: str,
        metadata: dict[str, str],
        plan: str,
    ) -> list[dict[str, Any]]:
        """A payment intent and its charges. `plan`: succeeded, retry, failed, uncaptured."""
        pi_id = self.new_id("pi")
        charges = []
        if plan in ("retry", "failed"):
            charges.append(
                self.charge(
                    cus,
                    amount=amount,
                    created=created,
                    description=description,
                    metadata=metadata,
                    pi_id=pi_id,
                    outcome="failed",
                )
            )
        if plan in ("succeeded", "retry", "uncaptured"):
            later = created + (self.rng.randint(60, 3600) if plan == "retry" else 0)
            charges.append(
                self.charge(
                    cus,
                    amount=amount,
                    created=min(later, self.now - 60),
                    description=description,
                    metadata=metadata,
                    pi_id=pi_id,
                    outcome="uncaptured" if plan == "uncaptured" else "succeeded",
                )
            )
        last = charges[-1]
        status = {
            "succeeded": "succeeded",
            "retry": "succeeded",
            "failed": "requires_payment_method",
            "uncaptured": "requires_capture",
        }[plan]
        error = None
        if plan == "failed":
            error = objects.payment_error(
                code=last["failure_code"],
                decline_code=last["outcome"]["reason"],
                message=last["failure_message"],
                charge=last["id"],
            )
        self.out["payment_intents"].append(
            objects.payment_intent(
                id=pi_id,
                created=created,
                amount=amount,
                currency=cus.currency,
                customer=cus.id,
                description=description,
                metadata=metadata,
                status=status,
                latest_charge=last["id"],
                payment_method=cus.card.payment_method if plan != "failed" else None,
                amount_received=amount if status == "succeeded" else 0,
                capture_method="manual" if plan == "uncaptured" else "automatic",
                last_payment_error=error,
                email=cus.obj["email"],
            )
        )
        return charges

    def maybe_refund(self, ch: dict[str, Any], cus: _Customer) -> None:
        """Refund some succeeded charges: in full, once in part, or in two parts."""
        if not ch["captured"] or self.rng.random() >= 0.10:
            return
        kind = self.pick(_REFUND_KINDS)
        amount = ch["amount"]
        # Three-decimal currencies must end in 0; every other currency refunds to the unit.
        unit = 10 if catalog.CURRENCY_EXPONENT[ch["currency"]] == 3 else 1
        if kind == "full":
            parts = [amount]
        else:
            first = max(unit, (amount * self.rng.randint(20, 60) // 100) // unit * unit)
            parts = [first]
            if kind == "two_partials":
                parts.append(max(unit, (amount - first) * self.rng.randint(20, 50) // 100))
        when = ch["created"]
        for part in parts:
            # Most refunds come within days; some months later.
            delay = self.rng.randint(1, 10) * DAY
            if self.rng.random() < 0.3:
                delay = self.rng.randint(35, 200) * DAY
            when = when + delay + self.rng.randint(0, DAY)
            if when >= self.now:
                break
            self.refund(ch, cus, part, when)

    def refund(self, ch: dict[str, Any], cus: _Customer, amount: int, created: int) -> None:
        re_id = self.new_id("re")
        settle_currency, settled, rate = self.settlement(ch["currency"], amount)
        txn_id = self.add_balance_transaction(
            created=created,
            amount=-settled,
            currency=settle_currency,
            fee=0,
            fee_details=[],
            exchange_rate=rate,
            source=re_id,
            type="refund",
            reporting_category="refund",
            description="REFUND FOR CHARGE",
        )
        obj = objects.refund(
            id=re_id,
            created=created,
            amount=amount,
            currency=ch["currency"],
            charge=ch["id"],
            payment_intent=ch["payment_intent"],
            balance_transaction=txn_id,
            reason=self.pick(_REFUND_REASONS),
            status="succeeded",
            metadata={"resourceId": ch["metadata"]["resourceId"]}
            if "resourceId" in ch["metadata"]
            else {},
        )
        self.out["refunds"].append(obj)
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] == ch["amount"]
        refunds = ch["refunds"]
        refunds["total_count"] += 1
        if len(refunds["data"]) < 10:
            refunds["data"].insert(0, obj)
        else:
            refunds["has_more"] = True

    def dispute(self, ch: dict[str, Any], created: int, status: str) -> None:
        """A chargeback: the amount and a dispute fee are debited; a won dispute returns the
        amount (the fee stays with Stripe)."""
        dp_id = self.new_id("dp")
        settle_currency, settled, rate = self.settlement(ch["currency"], ch["amount"])
        fee = catalog.DISPUTE_FEE_MINOR[settle_currency]
        bts = []
        debit = objects.balance_transaction(
            id=self.new_id("txn"),
            created=created,
            amount=-settled,
            currency=settle_currency,
            fee=fee,
            fee_details=[
                objects.fee_detail(amount=fee, currency=settle_currency, description="Dispute fee")
            ],
            exchange_rate=rate,
            source=dp_id,
            type="adjustment",
            reporting_category="dispute",
            description=f"Chargeback withdrawal for {ch['id']}",
            available_on=created,
            status="available",
        )
        bts.append(debit)
        if status == "won":
            won_at = min(created + 40 * DAY, self.now - DAY)
            bts.append(
                objects.balance_transaction(
                    id=self.new_id("txn"),
                    created=won_at,
                    amount=settled,
                    currency=settle_currency,
                    fee=0,
                    fee_details=[],
                    exchange_rate=rate,
                    source=dp_id,
                    type="adjustment",
                    reporting_category="dispute_reversal",
                    description=f"Chargeback reversal for {ch['id']}",
                    available_on=won_at,
                    status="available",
                )
            )
        self.out["balance_transactions"].extend(bts)
        self.out["disputes"].append(
            objects.dispute(
                id=dp_id,
                created=created,
                amount=ch["amount"],
                currency=ch["currency"],
                charge=ch["id"],
                payment_intent=ch["payment_intent"],
                reason=self.rng.choice(catalog.DISPUTE_REASONS),
                status=status,
                balance_transactions=bts,
            )
        )
        ch["disputed"] = True

    # -- orders ----------------------------------------------------------------------------

    def order(
        self, cus: _Customer, offering: catalog.Offering, quantity: int, created: int
    ) -> dict[str, Any]:
        total = catalog.unit_amount(offering, cus.currency) * quantity
        row = {
            "order_id": self.order_id(),
            "customer_email": cus.obj["email"],
            "total_minor": total,
            "currency": cus.currency,
            "status": "pending",
            "created_at": created,
            "product": offering.name,
            "category": offering.category,
        }
        self.data.orders.append(row)
        return row

    def one_off_orders(
        self,
        count: int,
        window: tuple[int, int] | None = None,
        customers: list[_Customer] | None = None,
        refunds: bool = True,
    ) -> None:
        """`count` orders of one-off products placed in `window` (the history by default) by
        `customers` (all by default), some refunded when `refunds`."""
        low, high = window or (self.start, self.now - DAY)
        customers = customers or self.customers
        one_offs = [o for o in catalog.OFFERINGS if o.interval is None]
        for n in range(count):
            if not n % _SETTLE_ORDERS:
                self.settle()
            cus = self.rng.choice(customers)
            offering = self.rng.choice(one_offs)
            created = self.moment(max(cus.obj["created"], low), high)
            quantity = self.pick(_QUANTITIES)
            case = self.pick(_ORDER_CASES)
            description = f"{offering.name} ({offering.description})"
            if case.startswith("orphan"):
                amount = catalog.unit_amount(offering, cus.currency) * quantity
                meta = {"category": offering.category}
                if case == "orphan_unknown_order":
                    meta["resourceId"] = hashlib.blake2b(
                        f"{self.id_space}:unknown:{created}".encode(), digest_size=12
                    ).hexdigest()
                for ch in self.pay(
                    cus,
                    amount=amount,
                    created=created,
                    description=description,
                    metadata=meta,
                    plan="succeeded",
                ):
                    if refunds:
                        self.maybe_refund(ch, cus)
                continue
            order = self.order(cus, offering, quantity, created)
            meta = {"resourceId": order["order_id"], "category": offering.category}
            pay_at = created + self.rng.randint(5, 600)
            if case == "unpaid":
                continue
            if case == "split":
                first = order["total_minor"] // 2
                parts = [first, order["total_minor"] - first]
            elif case == "mismatch":
                # Charged a different amount than the order says (a coupon applied in Stripe).
                discount = max(1, order["total_minor"] // 10)
                parts = [order["total_minor"] - discount]
            else:
                parts = [order["total_minor"]]
            plan = {"retry": "retry", "failed": "failed", "uncaptured": "uncaptured"}.get(
                case, "succeeded"
            )
            for i, part in enumerate(parts):
                charges = self.pay(
                    cus,
                    amount=part,
                    created=min(pay_at + i * 3600, self.now - 120),
                    description=description,
                    metadata=meta,
                    plan=plan,
                )
                for ch in charges:
                    if refunds:
                        self.maybe_refund(ch, cus)
            order["status"] = {"failed": "payment_failed", "uncaptured": "authorized"}.get(
                case, "paid"
            )

    # -- subscriptions ---------------------------------------------------------------------

    def subscriptions(self, count: int) -> None:
        plans = [o for o in catalog.OFFERINGS if o.interval]
        for _ in range(count):
            cus = self.rng.choice(self.customers)
            offering = self.rng.choice(plans)
            status = self.pick(_SUBSCRIPTION_STATUSES)
            period = 30 * DAY if offering.interval == "month" else 365 * DAY
            if status == "trialing":
                start = NOW - self.rng.randint(1, 12) * DAY
            elif offering.interval == "year":
                start = self.moment(self.start, NOW - 20 * DAY)
            else:
                start = self.moment(self.start, NOW - 3 * period)
            self.subscription(cus, offering, status, start, period)
            self.settle()

    def plan_change(
        self, offering: catalog.Offering, quantity: int
    ) -> tuple[catalog.Offering, int]:
        """Another plan of the same billing interval (an upgrade or a downgrade), or the
        same plan at another quantity."""
        others = [o for o in catalog.OFFERINGS if o.interval == offering.interval]
        others = [o for o in others if o.key != offering.key]
        if not others or self.rng.random() < 0.3:
            return offering, 2 if quantity == 1 else 1
        return self.rng.choice(others), quantity

    def discount_for(self, cus: _Customer, sub_id: str, start: int) -> dict[str, Any] | None:
        """The coupon a subscriber redeems at sign-up, if any, as a Stripe discount."""
        if self.rng.random() >= 0.3:
            return None
        # Coupons are handed out in turn, so that even a small account holds each kind.
        usable = [c for c in catalog.COUPONS if c.currency in (None, cus.currency)]
        turn = self.counters.get("coupon_turn", 0)
        self.counters["coupon_turn"] = turn + 1
        offer = usable[turn % len(usable)]
        return objects.discount(
            id=self.new_id("di"),
            customer=cus.id,
            subscription=sub_id,
            coupon=offer.id,
            start=start,
            end=None,
        )

    @staticmethod
    def discounted(amount: int, offer: catalog.CouponOffer) -> int:
        """What a coupon takes off an invoice of `amount` (Stripe rounds to the minor unit)."""
        if offer.percent_off is not None:
            return min(amount, _round_half_up(amount * offer.percent_off / 100))
        return min(amount, offer.amount_off or 0)

    def subscription(
        self,
        cus: _Customer,
        offering: catalog.Offering,
        status: str,
        start: int,
        period: int,
    ) -> None:
        sub_id = self.new_id("sub")
        si_id = self.new_id("si", 14)
        quantity = 1
        trial_start = trial_end = None
        billing_start = start
        if status == "trialing" or self.rng.random() < 0.2:
            trial_start, trial_end = start, start + 14 * DAY
            billing_start = trial_end
        canceled_at = ended_at = None
        end = NOW
        if status == "canceled":
            periods_paid = self.rng.randint(1, 4)
            canceled_at = min(billing_start + periods_paid * period - DAY, NOW - DAY)
            ended_at = end = canceled_at
        renewals = []
        t = billing_start
        while t < end:
            renewals.append(t)
            if t + period >= end:
                break
            t += period
        # Some subscribers change plan (or quantity) at a renewal: from then on every
        # invoice bills the new price, and the subscription item carries it.
        change_at = None
        eligible = status != "trialing" and len(renewals) >= 3
        if eligible and (self.rng.random() < 0.3 or not self.counters.get("plan_changes")):
            self.counters["plan_changes"] = self.counters.get("plan_changes", 0) + 1
            change_at = renewals[self.rng.randint(1, len(renewals) - 1)]
            new_offering, new_quantity = self.plan_change(offering, quantity)
        discount = self.discount_for(cus, sub_id, start)
        offer = None
        if discount is not None:
            offer = next(c for c in catalog.COUPONS if c.id == discount["source"]["coupon"])
        phases = [(billing_start, offering, quantity)]
        if change_at is not None:
            phases.append((change_at, new_offering, new_quantity))
        for i, (phase_start, phase_offering, phase_quantity) in enumerate(phases):
            phase_end = phases[i + 1][0] if i + 1 < len(phases) else None
            self.data.mrr_schedule.append(
                {
                    "subscription": sub_id,
                    "currency": cus.currency,
                    "starts": phase_start,
                    "ends": phase_end if phase_end is not None else ended_at,
                    "recurring_minor": catalog.unit_amount(phase_offering, cus.currency)
                    * phase_quantity,
                    "months_per_interval": 1 if phase_offering.interval == "month" else 12,
                    "percent_off": offer.percent_off if offer and offer.duration == "forever"
                    else None,
                    "amount_off": offer.amount_off if offer and offer.duration == "forever"
                    else None,
                }
            )  # fmt: skip
        invoices = []
        if trial_start is not None:
            price_obj = self.prices[(offering.key, cus.currency)]
            invoices.append(
                self.invoice(cus, sub_id, si_id, price_obj, quantity, 0, None, trial_start, "paid")
            )
        discount_spent = False
        for t in renewals:
            if change_at is not None and t >= change_at:
                offering, quantity = new_offering, new_quantity
            price_obj = self.prices[(offering.key, cus.currency)]
            is_last = t == renewals[-1]
            amount = price_obj["unit_amount"] * quantity
            applied = None
            if offer is not None and not discount_spent:
                applied = (discount["id"], self.discounted(amount, offer))
                discount_spent = offer.duration == "once"
            due = amount - (applied[1] if applied else 0)
            offering_desc = f"{offering.name} ({offering.description})"
            if status == "past_due" and is_last:
                inv = self.invoice(
                    cus, sub_id, si_id, price_obj, quantity, amount, applied, t, "open"
                )
                self.pay(
                    cus,
                    amount=due,
                    created=t,
                    description=f"Subscription renewal: {offering_desc}",
                    metadata={"category": offering.category, "invoice": inv["id"]},
                    plan="failed",
                )
            else:
                inv = self.invoice(
                    cus, sub_id, si_id, price_obj, quantity, amount, applied, t, "paid"
                )
                order = self.order(cus, offering, quantity, t)
                order["total_minor"] = due
                order["status"] = "paid"
                meta = {"resourceId": order["order_id"], "category": offering.category}
                for ch in self.pay(
                    cus,
                    amount=due,
                    created=t + self.rng.randint(60, 3600),
                    description=f"Subscription: {offering_desc}",
                    metadata=meta,
                    plan="succeeded",
                ):
                    self.maybe_refund(ch, cus)
            invoices.append(inv)
        current_start = invoices[-1]["period_start"] if invoices else start
        price_obj = self.prices[(offering.key, cus.currency)]
        item = objects.subscription_item(
            id=si_id,
            created=start,
            subscription=sub_id,
            price_obj=price_obj,
            quantity=quantity,
            period_start=current_start,
            period_end=current_start + period,
        )
        # A one-off ("once") coupon leaves the subscription once an invoice has used it.
        attached = [discount] if discount is not None and not discount_spent else []
        self.out["subscriptions"].append(
            objects.subscription(
                id=sub_id,
                created=start,
                customer=cus.id,
                currency=cus.currency,
                items=[item],
                status=status,
                start_date=start,
                trial_start=trial_start,
                trial_end=trial_end,
                canceled_at=canceled_at,
                ended_at=ended_at,
                latest_invoice=invoices[-1]["id"] if invoices else None,
                cancellation_reason="cancellation_requested" if canceled_at else None,
                discounts=attached,
            )
        )

    def invoice(
        self,
        cus: _Customer,
        sub_id: str,
        si_id: str,
        price_obj: dict[str, Any],
        quantity: int,
        amount: int,
        applied: tuple[str, int] | None,
        period_start: int,
        status: str,
    ) -> dict[str, Any]:
        """A subscription invoice of `amount` before the discount `applied` (id, amount)."""
        in_id = self.new_id("in")
        discount_amounts = [{"amount": applied[1], "discount": applied[0]}] if applied else []
        recurring = price_obj["recurring"]
        period = 30 * DAY if recurring["interval"] == "month" else 365 * DAY
        line = objects.invoice_line(
            id=self.new_id("il"),
            invoice=in_id,
            subscription=sub_id,
            subscription_item=si_id,
            price_obj=price_obj,
            quantity=quantity,
            amount=amount,
            currency=cus.currency,
            period_start=period_start,
            period_end=period_start + period,
            discount_amounts=discount_amounts,
        )
        due = amount - (applied[1] if applied else 0)
        paid = status == "paid"
        obj = objects.invoice(
            id=in_id,
            number=f"{cus.obj['invoice_prefix']}-{self.counters['in']:04d}",
            created=period_start,
            customer=cus.id,
            email=cus.obj["email"],
            name=cus.obj["name"],
            currency=cus.currency,
            subscription=sub_id,
            lines=[line],
            status=status,
            amount_due=due,
            amount_paid=due if paid else 0,
            attempt_count=1 if due else 0,
            billing_reason="subscription_create" if amount == 0 else "subscription_cycle",
            period_start=period_start,
            period_end=period_start + period,
            paid_at=period_start + 60 if paid else None,
            discount_amounts=discount_amounts,
        )
        self.out["invoices"].append(obj)
        return obj

    def disputes(self) -> None:
        written = self.written
        if written is None:
            succeeded = [
                c for c in self.out["charges"] if c["captured"] and not c["amount_refunded"]
            ]
        else:
            # The same charges in the same order, by their place among the written ones.
            self.settle()
            succeeded = written.disputable
        if not succeeded:
            return
        chosen = self.rng.sample(succeeded, max(1, len(succeeded) // 100))
        for i, ch in enumerate(chosen):
            if written is not None:
                ch = written.reopen(ch)
            first_at = ch["created"] + self.rng.randint(10, 60) * DAY
            if first_at >= NOW - 2 * DAY:
                continue
            if i == 0:
                # A charge disputed twice: the first dispute won, a second one lost.
                self.dispute(ch, first_at, "won")
                second_at = min(first_at + 45 * DAY, NOW - DAY)
                self.dispute(ch, second_at, "lost")
            else:
                status = self.pick(_DISPUTE_STATUSES)
                self.dispute(ch, first_at, status)


def _round_half_up(value: float) -> int:
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


def account_id_for(seed: int) -> str:
    return "acct_" + hashlib.blake2b(f"account:{seed}".encode(), digest_size=8).hexdigest()[:16]


# A story of this many charges or more is told in parts of about this many charges each, with
# draws and ids of their own: the parts of a large account are generated side by side, each in
# a process of its own (sandbox.store), and a process that needs the whole story (time
# advancing) tells them one after the other and joins them. The number of parts depends only
# on the size, so an account is the same on any machine.
PART_CHARGES = 250_000
# The lists every part holds the same objects of (built before the parts part ways).
CATALOG_LISTS = ("products", "prices", "coupons")


def story_parts(charges: int) -> int:
    """How many parts an account of `charges` charges is told in."""
    return max(1, charges // PART_CHARGES)


def account_of(seed: int, charges: int) -> Dataset:
    """The account of (seed, charges) with none of its objects: what a process that has its
    story's parts told elsewhere knows of it."""
    return _Story(seed, charges, account_id_for(seed)).data


def generate(seed: int = 42, charges: int = 2_000, parts: int | None = None) -> Dataset:
    """Generate an account with about `charges` charges (all other objects in proportion)."""
    return generate_story(seed, charges, parts).data


# Whether what a pause built moves to the collector's permanent generation as the pause ends.
# Only a process that is the sandbox (`python -m sandbox`) sets it: freezing keeps every
# object alive at that moment out of later collections, which a process that hosts the
# sandbox (a test run) should not have done to its own objects.
freeze_after_pause = False


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector held off while millions of long-lived, acyclic objects
    are built: each collection would walk every object made so far, and building 1M charges
    spent more time collecting than building (300k charges: 26.6 s with it, 15.2 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze_after_pause:
            # Otherwise the first collection after this walks all that was built (a second
            # per 100k charges), and later full ones again. Still freed by reference counts.
            gc.freeze()
        if was_enabled:
            gc.enable()


def generate_story(seed: int = 42, charges: int = 2_000, parts: int | None = None) -> _Story:
    """The generated account with the story that made it, which time can advance."""
    parts = story_parts(charges) if parts is None else parts
    with gc_paused():
        if parts == 1:
            return _generate_story(seed, charges)
        story = _joined([_generate_story(seed, charges, part, parts) for part in range(parts)])
        story.data.parts = parts
        return story


def generate_part(
    seed: int, charges: int, part: int, parts: int, written: Written | None = None
) -> _Story:
    """Part `part` (from 0) of the story of an account told in `parts` parts; with `written`,
    its objects go there as they are made, and the story's lists are left empty."""
    with gc_paused():
        return _generate_story(seed, charges, part, parts, written)


def _share(total: int, part: int, parts: int) -> int:
    return total // parts + (part < total % parts)


def _generate_story(
    seed: int, charges: int, part: int = 0, parts: int = 1, written: Written | None = None
) -> _Story:
    story = _Story(seed, charges, account_id_for(seed))
    story.written = written
    story.build_catalog()
    if parts > 1:
        story.enter_part(part, parts)
    share = _share(charges, part, parts)
    story.build_customers(_share(max(20, charges // 4), part, parts))
    # Subscriptions bill about 35% of all charges; one-off orders make the rest.
    story.subscriptions(max(4, share // 30))
    remaining = max(10, share - story.count("charges"))
    story.one_off_orders(int(remaining / 1.13))
    story.disputes()
    story.settle()
    if written is not None:
        written.close()
    _sort(story)
    return story


def _sort(story: _Story) -> None:
    if story.written is None:
        for name in OBJECT_TYPES:
            _order_by_time(story.out[name], "created", "id", descending=True)
    else:
        story.written.put_in_order()
    _order_by_time(story.data.orders, "created_at", "order_id", descending=False)


def _newest_first(times: Sequence[int], ids: list[str]) -> Any:
    """The places of a list's objects, newest first: the order `_order_by_time(...,
    descending=True)` puts a story's lists in."""
    return _time_order(times, ids, descending=True)


def _order_by_time(rows: list[dict], time: str, key: str, *, descending: bool) -> None:
    """Put `rows` in order of their (time, key), as `rows.sort(key=itemgetter(time, key),
    reverse=descending)` would."""
    if len(rows) < 2:
        return
    times = list(map(operator.itemgetter(time), rows))
    keys = list(map(operator.itemgetter(key), rows))
    order = _time_order(times, keys, descending=descending).to_pylist()
    rows[:] = operator.itemgetter(*order)(rows)


def _time_order(times: Sequence[int], keys: list[str], *, descending: bool) -> Any:
    """The places of rows in order of their times and, within one second, of their keys, as
    Python's sort of (time, key) orders them, in Arrow: under half the time of Python's sort
    for a large list (whose steps each compare a tuple of two boxed values, far apart in
    memory: at 1M charges, 4.0-4.8 s of a part's 19-25 s of telling; this way 1.9 s).
    Arrow's sort is stable, as Python's is, and compares strings by their UTF-8 bytes, which
    is Python's order of code points."""
    # Imported here: only the generator's processes need it, not every user of the sandbox.
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table({"time": pa.array(times, pa.int64()), "key": pa.array(keys, pa.string())})
    order = "descending" if descending else "ascending"
    return pc.sort_indices(table, sort_keys=[("time", order), ("key", order)])


def _joined(stories: list[_Story]) -> _Story:
    """The parts of a story as one story: the first part's catalogue and everyone's objects,
    customers, orders and billing schedule. Time advancing takes new ids from a space of its
    own, so they never meet a part's."""
    story = stories[0]
    for other in stories[1:]:
        for name in OBJECT_TYPES:
            if name not in CATALOG_LISTS:
                story.out[name] += other.out[name]
        story.customers += other.customers
        story.data.orders += other.data.orders
        story.data.mrr_schedule += other.data.mrr_schedule
    _sort(story)
    story.id_space = f"{story.seed}.after/{len(stories)}"
    story.counters = {}
    story._ids = {}
    return story
