"""An HTTP server that speaks Stripe's API for a generated account.

It implements what the pipeline relies on, with Stripe's semantics: lists newest first,
`limit` 1..100, `starting_after` / `ending_before` cursors, `created[gt|gte|lt|lte]`,
`has_more`, subscriptions filtered to non-canceled unless `status=all`, retrieve by id,
`GET /v1/account`, bearer or basic key auth (401 on a bad key) and Stripe's error envelope.

A dataset with connected accounts is a Connect platform: the platform's key reads a
connected account with the `Stripe-Account` header, `GET /v1/accounts` lists them, and each
connected account also answers its own key (`sk_test_sandbox_<k>`), as a standard account
does. The accounts share one clock; their events carry `account`, as Connect events do.

Objects are kept as their pre-rendered JSON bytes, so a page is a join of byte strings and
the server never dominates a benchmark.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from sandbox import activity
from sandbox.generator import DAY, NOW, OBJECT_TYPES, gc_paused, generate_story
from sandbox.store import ORDERS_FILE, connected_folders, object_files, write_orders_csv
from sandbox.truth import ground_truth
from sandbox.webhooks import (
    Deliverer,
    DeliverySettings,
    Endpoint,
    FaultPicker,
    Faults,
    new_endpoint,
)

log = logging.getLogger(__name__)

SANDBOX_API_KEY = "sk_test_sandbox"
DEFAULT_PORT = 12111
ADVANCE_FILE = "advance.json"
EVENT_RETENTION = 30 * DAY

# Equality filters each list endpoint accepts, by query parameter -> object field.
_FILTERS = {
    "charges": {"customer": "customer", "payment_intent": "payment_intent"},
    "refunds": {"charge": "charge", "payment_intent": "payment_intent"},
    "disputes": {"charge": "charge", "payment_intent": "payment_intent"},
    "payment_intents": {"customer": "customer"},
    "invoices": {"customer": "customer", "subscription": "subscription", "status": "status"},
    "subscriptions": {"customer": "customer", "price": None, "status": "status"},
    "customers": {"email": "email"},
    "balance_transactions": {"type": "type", "source": "source", "currency": "currency"},
    "prices": {"product": "product", "currency": "currency"},
    "products": {},
    "coupons": {},
    "events": {},
    "accounts": {},
}
# Fields a list can expand (`expand[]=data.<field>`; `expand[]=<field>` on a retrieve). The
# dataset holds them expanded; by default they are answered as ids, as Stripe does.
_EXPANDABLE = {"subscriptions": "discounts"}
_OBJECT_NAMES = {
    "customers": "customer",
    "products": "product",
    "prices": "price",
    "charges": "charge",
    "refunds": "refund",
    "balance_transactions": "balance_transaction",
    "payment_intents": "payment_intent",
    "disputes": "dispute",
    "subscriptions": "subscription",
    "invoices": "invoice",
    "coupons": "coupon",
    "events": "event",
    "accounts": "account",
}


class ApiError(Exception):
    """An error answered in Stripe's envelope."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message, "code": code, "param": param}}


def _listed(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """An object as its list answers it: an expandable field as ids."""
    expandable = _EXPANDABLE.get(name)
    if not expandable:
        return obj
    listed = dict(obj)
    listed[expandable] = [v["id"] if isinstance(v, dict) else v for v in obj.get(expandable) or []]
    return listed


class _Rendered:
    """The bodies of live objects, rendered when a page asks for them.

    Once time advances, the account is the story's objects, which the advances change in
    place; serving them from that one copy, instead of a rendered copy beside it, halves the
    sandbox's memory (at 1M charges: about 11 GB instead of 17.6 GB). A page of 100 charges renders
    in about a millisecond."""

    __slots__ = ("expand", "name", "objs")

    def __init__(self, name: str, objs: list[dict[str, Any]], expand: bool) -> None:
        self.name = name
        self.objs = objs  # shared by a collection's listed and expanded bodies
        self.expand = expand

    def __len__(self) -> int:
        return len(self.objs)

    def __getitem__(self, i: int) -> bytes:
        obj = self.objs[i]
        return orjson.dumps(obj if self.expand else _listed(self.name, obj))


@dataclass
class Collection:
    """One list endpoint's objects, oldest first (the reverse of the API's order): as the
    bodies read from a dataset's files, or (once time has advanced) as the story's live
    objects."""

    name: str
    keys: list[tuple[int, str]]  # (created, id), ascending
    bodies: list[bytes] | _Rendered
    fields: list[dict[str, Any]]  # the filterable fields of each object
    position: dict[str, int]
    expanded: list[bytes] | _Rendered | None = None  # `_EXPANDABLE[name]` expanded
    hidden: set[int] = dataclasses.field(default_factory=set)  # deleted: retrieve only

    @staticmethod
    def _render(name: str, obj: dict[str, Any]) -> tuple[bytes, bytes | None]:
        """The body as listed, and (for an expandable list) the body expanded."""
        full = orjson.dumps(obj)
        if name not in _EXPANDABLE:
            return full, None
        return orjson.dumps(_listed(name, obj)), full

    @classmethod
    def from_objects(cls, name: str, objs: list[dict[str, Any]]) -> Collection:
        """A collection serving live objects (rendered per request)."""
        ordered = sorted(objs, key=lambda o: (o["created"], o["id"]))
        keys = [(o["created"], o["id"]) for o in ordered]
        return cls(
            name=name,
            keys=keys,
            bodies=_Rendered(name, ordered, expand=False),
            fields=[_filter_fields(name, o) for o in ordered],
            position={k[1]: i for i, k in enumerate(keys)},
            expanded=_Rendered(name, ordered, expand=True) if name in _EXPANDABLE else None,
        )

    def upsert(self, obj: dict[str, Any]) -> None:
        """Add a new object or replace an existing one (time advancing)."""
        live = isinstance(self.bodies, _Rendered)
        body, expanded = (b"", None) if live else self._render(self.name, obj)
        fields = _filter_fields(self.name, obj)
        i = self.position.get(obj["id"])
        if i is None:
            key = (obj["created"], obj["id"])
            i = bisect.bisect_left(self.keys, key)
            self.keys.insert(i, key)
            if live:
                self.bodies.objs.insert(i, obj)
            else:
                self.bodies.insert(i, body)
            self.fields.insert(i, fields)
            if self.expanded is not None and not live:
                self.expanded.insert(i, expanded or body)
            if i < len(self.keys) - 1:
                # Rare: an object older than the newest; every later position moves.
                self.position = {k[1]: n for n, k in enumerate(self.keys)}
                self.hidden = {n + (n >= i) for n in self.hidden}
            else:
                self.position[obj["id"]] = i
            return
        self.fields[i] = fields
        if live:
            self.bodies.objs[i] = obj
            return
        self.bodies[i] = body
        if self.expanded is not None:
            self.expanded[i] = expanded or body

    def hide(self, object_id: str) -> None:
        """A deleted object: gone from lists; retrieving it answers the deleted stub."""
        self.hidden.add(self.position[object_id])

    @classmethod
    def from_lines(cls, name: str, lines: list[bytes]) -> Collection:
        expandable = _EXPANDABLE.get(name)
        parsed = []
        for line in lines:
            obj = orjson.loads(line)
            body = line
            if expandable:
                obj[expandable] = [
                    v["id"] if isinstance(v, dict) else v for v in obj.get(expandable) or []
                ]
                body = orjson.dumps(obj)
            fields = _filter_fields(name, obj)
            parsed.append(((obj["created"], obj["id"]), body, fields, line))
        parsed.sort(key=lambda item: item[0])
        keys = [p[0] for p in parsed]
        return cls(
            name=name,
            keys=keys,
            bodies=[p[1] for p in parsed],
            fields=[p[2] for p in parsed],
            position={k[1]: i for i, k in enumerate(keys)},
            expanded=[p[3] for p in parsed] if expandable else None,
        )

    def _bodies(self, expand: list[str], prefix: str) -> list[bytes]:
        field = _EXPANDABLE.get(self.name)
        if self.expanded is not None and f"{prefix}{field}" in expand:
            return self.expanded
        return self.bodies

    def list_page(
        self, params: dict[str, str], path: str, expand: list[str] | None = None
    ) -> bytes:
        limit = _int_param(params, "limit", 10)
        if not 1 <= limit <= 100:
            raise ApiError(
                400,
                f"Invalid integer: {limit}. Must be between 1 and 100.",
                code="parameter_invalid_integer",
                param="limit",
            )
        after, before = params.get("starting_after"), params.get("ending_before")
        if after and before:
            raise ApiError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        candidates = self._candidates(params)
        key_of = self.keys.__getitem__
        if before:
            lower = bisect.bisect_right(candidates, self._cursor(before), key=key_of)
            chosen = candidates[lower : lower + limit]
            has_more = lower + limit < len(candidates)
        else:
            upper = len(candidates)
            if after:
                upper = bisect.bisect_left(candidates, self._cursor(after), key=key_of)
            chosen = candidates[max(0, upper - limit) : upper]
            has_more = upper - limit > 0
        bodies = self._bodies(expand or [], "data.")
        data = b",".join(bodies[i] for i in reversed(chosen))
        more = b"true" if has_more else b"false"
        return (
            b'{"object":"list","data":[' + data + b'],"has_more":' + more + b',"url":"'
            + path.encode() + b'"}'
        )  # fmt: skip

    def retrieve(self, object_id: str, expand: list[str] | None = None) -> bytes:
        i = self.position.get(object_id)
        if i is None:
            raise ApiError(
                404,
                f"No such {_OBJECT_NAMES[self.name]}: '{object_id}'",
                code="resource_missing",
                param="id",
            )
        if i in self.hidden:
            return orjson.dumps({"id": object_id, "object": _OBJECT_NAMES[self.name],
                                 "deleted": True})  # fmt: skip
        return self._bodies(expand or [], "")[i]

    def _cursor(self, object_id: str) -> tuple[int, str]:
        i = self.position.get(object_id)
        if i is None:
            raise ApiError(
                404,
                f"No such {_OBJECT_NAMES[self.name]}: '{object_id}'",
                code="resource_missing",
                param="starting_after",
            )
        return self.keys[i]

    def _candidates(self, params: dict[str, str]) -> range | list[int]:
        """Ascending indexes of the objects the filters keep."""
        lo, hi = 0, len(self.keys)
        for op, value in _created_filters(params):
            bound = (value, "") if op in ("gte", "lt") else (value, "\U0010ffff")
            cut = bisect.bisect_left(self.keys, bound)
            if op in ("gt", "gte"):
                lo = max(lo, cut)
            else:
                hi = min(hi, cut)
        candidates: range | list[int] = range(lo, max(lo, hi))
        equalities = {
            field: params[param]
            for param, field in _FILTERS.get(self.name, {}).items()
            if field and param in params and not (param == "status" and params[param] == "all")
        }
        if self.name == "subscriptions" and "status" not in params:
            candidates = [i for i in candidates if self.fields[i]["status"] != "canceled"]
        if self.name == "events":
            candidates = self._event_candidates(candidates, params)
        if self.hidden:
            candidates = [i for i in candidates if i not in self.hidden]
        if equalities:
            candidates = [
                i for i in candidates if all(self.fields[i][f] == v for f, v in equalities.items())
            ]
        return candidates

    def _event_candidates(self, candidates: range | list[int], params: dict[str, str]) -> list[int]:
        """`type` (a `prefix.*` wildcard allowed) or `types[]` (up to 20 exact types)."""
        wanted = [v for k, v in params.items() if k.startswith("types[")]
        if "type" in params and wanted:
            raise ApiError(400, "You may only specify one of these parameters: type, types.",
                           param="types")  # fmt: skip
        if "type" in params:
            kind = params["type"]
            if kind.endswith(".*"):
                prefix = kind[:-1]
                return [i for i in candidates if self.fields[i]["type"].startswith(prefix)]
            return [i for i in candidates if self.fields[i]["type"] == kind]
        if wanted:
            if len(wanted) > 20:
                raise ApiError(400, "types may list at most 20 event types.", param="types")
            chosen = set(wanted)
            return [i for i in candidates if self.fields[i]["type"] in chosen]
        return list(candidates)


def _filter_fields(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The fields of an object its list can filter on."""
    if name == "events":
        return {"type": obj["type"]}
    return {f: obj.get(f) for f in _FILTERS.get(name, {}).values() if f}


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Invalid integer: {raw}", param=name) from None


def _created_filters(params: dict[str, str]) -> list[tuple[str, int]]:
    found = []
    if "created" in params:
        value = _int_param(params, "created", 0)
        found += [("gte", value), ("lte", value)]
    for op in ("gt", "gte", "lt", "lte"):
        name = f"created[{op}]"
        if name in params:
            found.append((op, _int_param(params, name, 0)))
    return found


class SandboxState:
    """A dataset folder loaded for serving, with its clock, events and webhook endpoints.

    Time advances only through `advance` (`POST /v1/test_helpers/advance`): the steps taken
    are kept in the folder's `advance.json` and replayed when a server starts again, so the
    account persists as a Stripe account does; the folder's orders export and ground truth
    are rewritten with every step.
    """

    def __init__(
        self,
        folder: Path,
        api_keys: set[str] | None = None,
        *,
        faults: Faults | None = None,
        delivery: DeliverySettings | None = None,
        platform: SandboxState | None = None,
    ) -> None:
        folder = Path(folder)
        self.folder = folder
        self.api_keys = api_keys or {SANDBOX_API_KEY}
        self.manifest = json.loads((folder / "manifest.json").read_text())
        self.account = (folder / "account.json").read_bytes()
        self.account_id: str = self.manifest["account_id"]
        self.platform = platform
        self.lock = platform.lock if platform else threading.RLock()
        self.faults = FaultPicker(faults) if faults and faults.any else None
        self.requests: list[str] = []  # the authenticated requests served, for tests
        self.endpoints: list[Endpoint] = []
        self.delivery_settings = delivery or DeliverySettings()
        self._deliverer: Deliverer | None = None
        self.story = None
        self.steps: list[dict[str, int]] = []
        self.now = NOW
        self.collections: dict[str, Collection] = {}
        # Connected accounts by id, and the account each key reads.
        self.connected: dict[str, SandboxState] = {}
        self.key_owners: dict[str, SandboxState] = dict.fromkeys(self.api_keys, self)
        if platform is None:
            for sub in connected_folders(folder):
                child = SandboxState(sub, {f"{SANDBOX_API_KEY}_{sub.name}"}, platform=self)
                self.connected[child.account_id] = child
                self.key_owners.update(child.key_owners)
        self.accounts = Collection.from_lines(
            "accounts", [child.account for child in self.connected.values()]
        )
        steps = json.loads((folder / ADVANCE_FILE).read_text())["steps"] if (
            folder / ADVANCE_FILE
        ).exists() else []  # fmt: skip
        if steps:
            self._replay(steps)
            return
        with gc_paused():
            for name in OBJECT_TYPES:
                lines = []
                for path in object_files(folder, name):
                    with open(path, "rb") as f:
                        lines += [line.rstrip(b"\n") for line in f if line.strip()]
                self.collections[name] = Collection.from_lines(name, lines)
        self.collections["events"] = Collection.from_lines("events", [])

    @property
    def now(self) -> int:
        return self.platform.now if self.platform else self._now

    @now.setter
    def now(self, value: int) -> None:
        self._now = value

    def _event_body(self, body: bytes) -> bytes:
        """A connected account's events name it, as Connect events do."""
        if self.platform is None:
            return body
        event = orjson.loads(body)
        event["account"] = self.account_id
        return orjson.dumps(event)

    # -- time advancing ---------------------------------------------------------------------

    def _story(self):
        """The story that made the account, which time advances; from then on the account is
        served from its objects. The first advance of an account loaded from its files tells
        the story again (seeded: the same objects) and lets the files' bodies go."""
        if self.story is None:
            loaded = [name for name in OBJECT_TYPES if name in self.collections]
            for name in loaded:
                del self.collections[name]
            _release_freed_memory()
            self.story = generate_story(
                self.manifest["seed"],
                self.manifest["charges_requested"],
                self.manifest.get("parts", 1),
            )
            if loaded:
                self._serve_story()
        return self.story

    def _serve_story(self) -> None:
        with gc_paused():
            for name in OBJECT_TYPES:
                self.collections[name] = Collection.from_objects(name, self.story.out[name])
        for cus_id in self.story.data.deleted_customers:
            self.collections["customers"].hide(cus_id)

    def _replay(self, steps: list[dict[str, int]]) -> None:
        story = self._story()
        events: list[bytes] = []
        for step in steps:
            result = activity.advance(story, len(self.steps), step["seconds"], step["changes"])
            self.steps.append(step)
            events += [self._event_body(e.body) for e in result.events]
        self.now = story.now
        self._serve_story()
        self.collections["events"] = Collection.from_lines("events", events)

    def advance(self, seconds: int, changes: int | None = None) -> dict[str, Any]:
        """Move the clock forward with new activity in every account; deliver the events to
        the endpoints."""
        with self.lock:
            result = self._advance_own(seconds, changes)
            events = [(e["id"], e["type"], orjson.dumps(e)) for e in result.pop("_events")]
            changed = dict(result["changed"])
            for child in self.connected.values():
                child_result = child._advance_own(seconds, changes)
                events += [(e["id"], e["type"], orjson.dumps(e)) for e in child_result["_events"]]
                for name, count in child_result["changed"].items():
                    changed[name] = changed.get(name, 0) + count
            self._persist()
            # When the events left: the sandbox's own work for the step (the activity, the
            # export and ground truth rewritten) is not part of a webhook's journey.
            sent_at = time.time()
            if self.endpoints:
                self.deliverer.submit(list(self.endpoints), events)
        return {**result, "events": len(events), "changed": dict(sorted(changed.items())),
                "events_sent_at": sent_at}  # fmt: skip

    def _advance_own(self, seconds: int, changes: int | None) -> dict[str, Any]:
        story = self._story()
        if changes is None:
            changes = max(10, self.manifest["charges_requested"] // 100)
        try:
            result = activity.advance(story, len(self.steps), seconds, changes)
        except ValueError as err:
            raise ApiError(400, str(err), param="seconds") from None
        self.steps.append({"seconds": seconds, "changes": changes})
        self.now = result.now
        by_id = {
            name: {obj["id"]: obj for obj in story.out[name] if obj["id"] in ids}
            for name, ids in result.changed.items()
            if name in self.collections
        }
        for name, objs in by_id.items():
            for obj in sorted(objs.values(), key=lambda o: (o["created"], o["id"])):
                self.collections[name].upsert(obj)
        for cus_id in story.data.deleted_customers:
            if self.collections["customers"].position[cus_id] not in (
                self.collections["customers"].hidden
            ):
                self.collections["customers"].hide(cus_id)
        events = [orjson.loads(self._event_body(e.body)) for e in result.events]
        for event in events:
            self.collections["events"].upsert(event)
        if self.platform is not None:
            self._persist()
        return {
            "object": "sandbox_advance",
            "now": self.now,
            "events": len(events),
            "changed": {name: len(ids) for name, ids in sorted(result.changed.items())},
            "_events": events,
        }

    def _persist(self) -> None:
        data = self.story.data
        orders = list(data.orders)
        if self.connected:
            # One CarePortals: the top export holds every account's orders.
            for child in self.connected.values():
                orders += child._story().data.orders
            orders.sort(key=lambda o: (o["created_at"], o["order_id"]))
        _write_atomically(self.folder / ORDERS_FILE, lambda p: write_orders_csv(orders, p))
        truth = json.dumps(ground_truth(data), indent=2) + "\n"
        _write_atomically(self.folder / "ground_truth.json", lambda p: p.write_text(truth))
        steps = json.dumps({"steps": self.steps}, indent=2) + "\n"
        _write_atomically(self.folder / ADVANCE_FILE, lambda p: p.write_text(steps))

    # -- webhooks -----------------------------------------------------------------------------

    @property
    def deliverer(self) -> Deliverer:
        if self._deliverer is None:
            self._deliverer = Deliverer(self.delivery_settings)
        return self._deliverer

    def add_endpoint(self, url: str, events: list[str], secret: str | None = None) -> Endpoint:
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, f"Invalid URL: {url!r}", param="url")
        endpoint = new_endpoint(url, events, secret)
        with self.lock:
            self.endpoints.append(endpoint)
        return endpoint

    def close(self) -> None:
        if self._deliverer is not None:
            self._deliverer.stop()

    # -- requests -----------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> SandboxState:
        """The account the request's key reads (401 for no key or an unknown one)."""
        if not header:
            raise ApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth "
                "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        scheme, _, value = header.partition(" ")
        key = value.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().split(":", 1)[0]
            except ValueError:
                key = ""
        owner = self.key_owners.get(key)
        if owner is None:
            masked = (key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]) if len(key) > 12 else "***"
            raise ApiError(401, f"Invalid API Key provided: {masked}", code="api_key_invalid")
        return owner

    def reading(self, owner: SandboxState, stripe_account: str | None) -> SandboxState:
        """The account a request reads: the key's own, or (the platform's key with a
        `Stripe-Account` header) one of its connected accounts."""
        if not stripe_account or stripe_account == owner.account_id:
            return owner
        target = owner.connected.get(stripe_account)
        if target is None:
            raise ApiError(
                403,
                f"The provided key does not have access to account '{stripe_account}' (or "
                "that account does not exist). Application access may have been revoked.",
                type="invalid_request_error",
                code="account_invalid",
            )
        return target

    def answer(
        self,
        method: str,
        target: str,
        auth: str | None,
        form: bytes = b"",
        stripe_account: str | None = None,
    ) -> tuple[int, bytes]:
        try:
            url = urlsplit(target)
            if url.path == "/healthz":
                return 200, json.dumps(
                    {"status": "ok", "dataset": self.folder.name, "now": self.now,
                     "accounts": [self.account_id, *self.connected]}
                ).encode()  # fmt: skip
            account = self.reading(self.authenticate(auth), stripe_account)
            account.requests.append(f"{method} {target}")
            parts = [p for p in url.path.split("/") if p]
            if method == "POST":
                return 200, self._post(parts, url.path, parse_qsl(form.decode(errors="replace")))
            return account._get(method, url, parts)
        except ApiError as err:
            return err.status, json.dumps(err.body).encode()
        except Exception:
            log.exception("sandbox: %s %s failed", method, target)
            body = ApiError(500, "An unknown error occurred", type="api_error").body
            return 500, json.dumps(body).encode()

    def _get(self, method: str, url: Any, parts: list[str]) -> tuple[int, bytes]:
        """A GET on this account (authenticated); raises ApiError."""
        if method != "GET":
            raise ApiError(405, f"Unrecognized request URL ({method}: {url.path}).")
        pairs = parse_qsl(url.query, keep_blank_values=True)
        params = {k: v for k, v in pairs if k != "types[]"}
        for n, kind in enumerate(v for k, v in pairs if k == "types[]"):
            params[f"types[{n}]"] = kind
        expand = [v for k, v in pairs if k in ("expand[]", "expand")]
        if parts[:1] != ["v1"] or len(parts) not in (2, 3):
            raise ApiError(404, f"Unrecognized request URL (GET: {url.path}).")
        if parts[1] == "account" and len(parts) == 2:
            return 200, self.account
        if parts[1] == "accounts":
            if len(parts) == 3:
                return 200, self.accounts.retrieve(parts[2])
            return 200, self.accounts.list_page(dict(pairs), url.path)
        if parts[1] == "webhook_endpoints" and len(parts) == 2:
            data = [ep.as_json() for ep in (self.platform or self).endpoints]
            return 200, orjson.dumps({"object": "list", "data": data, "has_more": False,
                                      "url": url.path})  # fmt: skip
        with self.lock:
            collection = self.collections.get(parts[1])
            if collection is None:
                raise ApiError(404, f"Unrecognized request URL (GET: {url.path}).")
            if len(parts) == 3:
                return 200, collection.retrieve(parts[2], expand)
            if parts[1] == "events":
                # Stripe keeps events for 30 days.
                params.setdefault("created[gte]", str(self.now - EVENT_RETENTION))
                oldest = self.now - EVENT_RETENTION
                if int(params["created[gte]"]) < oldest:
                    params["created[gte]"] = str(oldest)
            return 200, collection.list_page(params, url.path, expand)

    def _post(self, parts: list[str], path: str, form: list[tuple[str, str]]) -> bytes:
        fields = dict(form)
        if parts == ["v1", "test_helpers", "advance"]:
            seconds = _int_param(fields, "seconds", DAY)
            changes = _int_param(fields, "changes", 0) or None
            return orjson.dumps(self.advance(seconds, changes))
        if parts == ["v1", "webhook_endpoints"]:
            if "url" not in fields:
                raise ApiError(400, "Missing required param: url.", param="url")
            events = [v for k, v in form if k.startswith("enabled_events[")]
            endpoint = self.add_endpoint(fields["url"], events)
            return orjson.dumps(endpoint.as_json(with_secret=True))
        raise ApiError(404, f"Unrecognized request URL (POST: {path}).")


def _release_freed_memory() -> None:
    """Hand the memory of freed bodies back to the system (glibc keeps freed blocks for
    reuse, and the story's small objects come from Python's own arenas, which cannot reuse
    them): at 1M charges, 6 GB that would otherwise stay beside the story."""
    # Without glibc the memory is reused later instead.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _write_atomically(path: Path, write) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    write(staging)
    os.replace(staging, path)


def make_handler(state: SandboxState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold every response that ends in a small segment ~40 ms.
        disable_nagle_algorithm = True

        def date_time_string(self, timestamp: float | None = None) -> str:
            # The `Date` header tells the account's clock, as Stripe's tells Stripe's.
            return formatdate(state.now if timestamp is None else timestamp, usegmt=True)

        def _send(self, status: int, body: bytes, fault: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_sandbox")
            if status >= 500 or status == 429:
                self.send_header("Stripe-Should-Retry", "true")
            self.end_headers()
            if fault == "drop":
                # Half the body, then the connection is gone.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def do_GET(self) -> None:
            fault = None
            if state.faults and self.path.startswith("/v1/"):
                fault = state.faults.draw()
            if fault == "429":
                body = ApiError(429, "Too many requests hit the API too quickly.",
                                type="invalid_request_error", code="rate_limit").body  # fmt: skip
                self._send(429, json.dumps(body).encode())
                return
            if fault == "500":
                body = ApiError(500, "An unknown error occurred", type="api_error").body
                self._send(500, json.dumps(body).encode())
                return
            if fault == "slow":
                time.sleep(state.faults.faults.slow_seconds)
            headers = self.headers
            status, body = state.answer("GET", self.path, headers.get("Authorization"),
                                        stripe_account=headers.get("Stripe-Account"))  # fmt: skip
            self._send(status, body, fault if fault == "drop" and status == 200 else None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length)
            status, body = state.answer("POST", self.path, self.headers.get("Authorization"), form)
            self._send(status, body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("sandbox: " + format, *args)

    return Handler


class SandboxServer:
    """The sandbox on a local port, in a background thread (tests) or in the foreground."""

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.httpd = ThreadingHTTPServer((host, port), make_handler(state))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
