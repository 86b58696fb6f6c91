"""Webhook delivery the way Stripe does it, and the API faults the sandbox can inject.

Delivery: every event goes to each registered endpoint whose `enabled_events` match, as a
POST of the event's JSON signed in `Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of
"<t>.<body>" under the endpoint's secret>`. A non-2xx answer (or no answer) is retried with
backoff; by configuration some events are delivered twice and a step's events are shuffled,
as Stripe guarantees neither exactly-once nor ordered delivery.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header of a body."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    enabled_events: list[str] = field(default_factory=lambda: ["*"])

    def wants(self, event_type: str) -> bool:
        return any(
            kind == "*" or kind == event_type
            or (kind.endswith(".*") and event_type.startswith(kind[:-1]))
            for kind in self.enabled_events
        )  # fmt: skip

    def as_json(self, with_secret: bool = False) -> dict:
        body = {"id": self.id, "object": "webhook_endpoint", "url": self.url,
                "enabled_events": self.enabled_events, "status": "enabled"}  # fmt: skip
        if with_secret:
            body["secret"] = self.secret
        return body


def new_endpoint(url: str, enabled_events: list[str], secret: str | None = None) -> Endpoint:
    return Endpoint(
        id=f"we_{secrets.token_hex(12)}",
        url=url,
        secret=secret or f"whsec_{secrets.token_hex(24)}",
        enabled_events=enabled_events or ["*"],
    )


@dataclass(frozen=True)
class DeliverySettings:
    # Seconds before each retry of a failed delivery (Stripe's are hours; the sandbox's short).
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    duplicate_rate: float = 0.05  # share of events delivered twice
    shuffle: bool = True  # deliver a step's events out of order
    timeout: float = 10.0
    seed: int = 0


class Deliverer:
    """A background thread that delivers, retries and records webhook attempts."""

    def __init__(self, settings: DeliverySettings | None = None) -> None:
        self.settings = settings or DeliverySettings()
        self.rng = random.Random(self.settings.seed)
        self._queue: list[tuple[float, int, Endpoint, str, bytes, int]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self.attempts = 0
        self.delivered: dict[str, int] = {}  # event id -> 2xx answers
        self.failed: dict[str, int] = {}  # event id -> non-2xx answers or no answer
        self.abandoned: list[str] = []
        self._pending = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="webhooks")
        self._thread.start()

    def submit(self, endpoints: list[Endpoint], events: list[tuple[str, str, bytes]]) -> None:
        """Queue (id, type, body) events for the endpoints that want them."""
        batch = [
            (ep, eid, body) for eid, kind, body in events for ep in endpoints if ep.wants(kind)
        ]
        if self.settings.shuffle:
            self.rng.shuffle(batch)
        copies = [item for item in batch if self.rng.random() < self.settings.duplicate_rate]
        with self._cv:
            now = time.monotonic()
            for ep, eid, body in batch + copies:
                heapq.heappush(self._queue, (now, next(self._order), ep, eid, body, 0))
                self._pending += 1
            self._cv.notify_all()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is queued or in flight (tests)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.1))
        return True

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped:
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cv.wait(wait)
                if self._stopped:
                    return
                _, _, ep, eid, body, attempt = heapq.heappop(self._queue)
            ok = self._post(ep, body)
            with self._cv:
                self.attempts += 1
                if ok:
                    self.delivered[eid] = self.delivered.get(eid, 0) + 1
                else:
                    self.failed[eid] = self.failed.get(eid, 0) + 1
                    delays = self.settings.retry_delays
                    if attempt < len(delays):
                        due = time.monotonic() + delays[attempt]
                        heapq.heappush(self._queue, (due, next(self._order), ep, eid, body,
                                                     attempt + 1))  # fmt: skip
                        self._pending += 1
                    else:
                        self.abandoned.append(eid)
                        log.warning("webhook %s to %s abandoned after %d attempts", eid, ep.url,
                                    attempt + 1)  # fmt: skip
                self._pending -= 1
                self._cv.notify_all()

    def _post(self, ep: Endpoint, body: bytes) -> bool:
        request = urllib.request.Request(
            ep.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(body, ep.secret),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as answer:
                return 200 <= answer.status < 300
        except urllib.error.HTTPError as err:
            err.close()
            return False
        except (urllib.error.URLError, OSError):
            return False


@dataclass(frozen=True)
class Faults:
    """Faults injected into API reads, each with its probability per request."""

    rate_limited: float = 0.0  # 429 with Stripe-Should-Retry: true
    server_error: float = 0.0  # 500
    dropped: float = 0.0  # the connection closed halfway through the body
    slow: float = 0.0  # the answer delayed by `slow_seconds`
    slow_seconds: float = 0.5
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """`429=0.05,500=0.02,drop=0.02,slow=0.05,slow_seconds=0.2,seed=1` (any subset)."""
        names = {"429": "rate_limited", "500": "server_error", "drop": "dropped",
                 "slow": "slow", "slow_seconds": "slow_seconds", "seed": "seed"}  # fmt: skip
        values: dict[str, float | int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, _, raw = part.partition("=")
            if key.strip() not in names:
                raise ValueError(
                    f"SANDBOX_FAULTS: unknown fault {key.strip()!r}; known: {', '.join(names)}"
                )
            name = names[key.strip()]
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise ValueError(f"SANDBOX_FAULTS: {part!r} is not name=number") from None
        return cls(**values)

    @property
    def any(self) -> bool:
        return any((self.rate_limited, self.server_error, self.dropped, self.slow))


class FaultPicker:
    """Draws the fault (or none) for each request, reproducibly from the seed."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def draw(self) -> str | None:
        f = self.faults
        with self._lock:
            roll = self._rng.random()
            for name, rate in (("429", f.rate_limited), ("500", f.server_error),
                               ("drop", f.dropped), ("slow", f.slow)):  # fmt: skip
                if roll < rate:
                    self.injected[name] = self.injected.get(name, 0) + 1
                    return name
                roll -= rate
        return None
