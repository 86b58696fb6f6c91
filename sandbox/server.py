"""An HTTP server that speaks Stripe's API for a generated account.

It implements what the pipeline relies on, with Stripe's semantics: lists newest first,
`limit` 1..100, `starting_after` / `ending_before` cursors, `created[gt|gte|lt|lte]`,
`has_more`, subscriptions filtered to non-canceled unless `status=all`, retrieve by id,
`GET /v1/account`, bearer or basic key auth (401 on a bad key) and Stripe's error envelope.

Objects are kept as their pre-rendered JSON bytes, so a page is a join of byte strings and
the server never dominates a benchmark.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from sandbox.generator import OBJECT_TYPES

log = logging.getLogger(__name__)

SANDBOX_API_KEY = "sk_test_sandbox"
DEFAULT_PORT = 12111

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
}


class ApiError(Exception):
    """An error answered in Stripe's envelope."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type, "message": message, "code": code, "param": param}}


@dataclass
class Collection:
    """One list endpoint's objects, oldest first (the reverse of the API's order)."""

    name: str
    keys: list[tuple[int, str]]  # (created, id), ascending
    bodies: list[bytes]
    fields: list[dict[str, Any]]  # the filterable fields of each object
    position: dict[str, int]
    expanded: list[bytes] | None = None  # the bodies with `_EXPANDABLE[name]` expanded

    @classmethod
    def from_lines(cls, name: str, lines: list[bytes]) -> Collection:
        wanted = [f for f in _FILTERS.get(name, {}).values() if f]
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
            fields = {f: obj.get(f) for f in wanted}
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
        if equalities:
            candidates = [
                i for i in candidates if all(self.fields[i][f] == v for f, v in equalities.items())
            ]
        return candidates


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
    """A dataset folder loaded for serving."""

    def __init__(self, folder: Path, api_keys: set[str] | None = None) -> None:
        folder = Path(folder)
        self.folder = folder
        self.api_keys = api_keys or {SANDBOX_API_KEY}
        self.account = (folder / "account.json").read_bytes()
        self.collections: dict[str, Collection] = {}
        for name in OBJECT_TYPES:
            with open(folder / "objects" / f"{name}.jsonl", "rb") as f:
                lines = [line.rstrip(b"\n") for line in f if line.strip()]
            self.collections[name] = Collection.from_lines(name, lines)

    def authenticate(self, header: str | None) -> None:
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
        if key not in self.api_keys:
            masked = (key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]) if len(key) > 12 else "***"
            raise ApiError(401, f"Invalid API Key provided: {masked}", code="api_key_invalid")

    def answer(self, method: str, target: str, auth: str | None) -> tuple[int, bytes]:
        try:
            url = urlsplit(target)
            if url.path == "/healthz":
                return 200, json.dumps({"status": "ok", "dataset": self.folder.name}).encode()
            self.authenticate(auth)
            if method != "GET":
                raise ApiError(405, f"Unrecognized request URL ({method}: {url.path}).")
            pairs = parse_qsl(url.query, keep_blank_values=True)
            params = dict(pairs)
            expand = [v for k, v in pairs if k in ("expand[]", "expand")]
            parts = [p for p in url.path.split("/") if p]
            if parts[:1] != ["v1"] or len(parts) not in (2, 3):
                raise ApiError(404, f"Unrecognized request URL (GET: {url.path}).")
            if parts[1] == "account" and len(parts) == 2:
                return 200, self.account
            collection = self.collections.get(parts[1])
            if collection is None:
                raise ApiError(404, f"Unrecognized request URL (GET: {url.path}).")
            if len(parts) == 3:
                return 200, collection.retrieve(parts[2], expand)
            return 200, collection.list_page(params, url.path, expand)
        except ApiError as err:
            return err.status, json.dumps(err.body).encode()


def make_handler(state: SandboxState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold every response that ends in a small segment ~40 ms.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            status, body = state.answer("GET", self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_sandbox")
            if status >= 500 or status == 429:
                self.send_header("Stripe-Should-Retry", "true")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status, body = state.answer("POST", self.path, self.headers.get("Authorization"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

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

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
