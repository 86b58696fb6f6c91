"""The webhook receiver: Stripe events made durable before they are acknowledged.

`python -m ingestion.webhooks` (or `make webhooks`) serves `POST /webhooks/stripe`, and
`POST /webhooks/stripe/<acct_...>` for the endpoint of one of several independent accounts
(its events do not name their account; a Connect endpoint's do). Each request is checked in
this order, each failure with its own status and nothing landed:

    404 another path            405 another method           411 no Content-Length
    413 a body over the limit   415 not application/json     400 no, a bad or a stale
    `Stripe-Signature` (stripe-python, tolerance 300 s, any of several `v1` signatures,
    any of several secrets for rotation)                      400 malformed JSON or an
    event without id, type or created

An accepted event is appended as one JSON line to the landing file of this process and the
file is fsync'd before the 200 goes out (several requests share one fsync: group commit).
An event id already landed, or landing right now, is acknowledged once it is durable and
not written twice. `GET /healthz` tells what the receiver holds. The receiver never opens
DuckDB: `ingestion.landing` loads the files (the Dagster sensor `webhook_landing_sensor`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import stripe

from ingestion.settings import ConfigurationError, webhook_secrets
from sandbox.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/stripe"
_ACCOUNT_PATH = re.compile(r"^/webhooks/stripe(?:/(acct_[A-Za-z0-9]{1,64}))?/?$")


def account_of_path(path: str) -> tuple[bool, str | None]:
    """(a webhook path?, the account it names) of a request path."""
    found = _ACCOUNT_PATH.match(path.split("?")[0])
    return (found is not None, found.group(1) if found else None)


LANDING_GLOB = "events-*.jsonl"


@dataclass(frozen=True)
class ReceiverSettings:
    secrets: tuple[str, ...]
    landing_dir: Path = PROJECT_ROOT / ".state" / "webhooks"
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 1024 * 1024
    tolerance_seconds: int = 300

    @classmethod
    def from_env(cls) -> ReceiverSettings:
        env = os.environ
        secrets, problems = webhook_secrets(env.get("STRIPE_WEBHOOK_SECRET", ""))
        if not secrets:
            raise ConfigurationError(
                "STRIPE_WEBHOOK_SECRET is not set: give the endpoint's signing secret "
                "(whsec_...; several, comma-separated, while rotating)."
            )
        if problems:
            raise ConfigurationError(problems[0])
        return cls(
            secrets=secrets,
            landing_dir=Path(env.get("WEBHOOK_LANDING_DIR", cls.landing_dir)),
            host=env.get("WEBHOOK_HOST", cls.host),
            port=int(env.get("WEBHOOK_PORT", cls.port)),
            max_body_bytes=int(env.get("WEBHOOK_MAX_BODY_BYTES", cls.max_body_bytes)),
        )


def landing_dir_from_env() -> Path:
    return Path(os.environ.get("WEBHOOK_LANDING_DIR", ReceiverSettings.landing_dir))


class RejectedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Pending:
    line: bytes
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class Landing:
    """Append-only landing files with one writer thread that fsyncs groups of events."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.seen: set[str] = set()
        for path in sorted(self.folder.glob(LANDING_GLOB)):
            for event_id in _ids_in(path):
                self.seen.add(event_id)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        self.path = self.folder / f"events-{stamp}-{os.getpid()}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.folder)
        self._lock = threading.Lock()
        self._inflight: dict[str, _Pending] = {}
        self._queue: list[_Pending] = []
        self._cv = threading.Condition(self._lock)
        self._closed = False
        self.landed = 0
        self.duplicates = 0
        self._writer = threading.Thread(target=self._write_loop, daemon=True, name="landing")
        self._writer.start()

    def land(self, event_id: str, line: bytes, timeout: float = 10.0) -> bool:
        """Make the event durable (or find it already is); True once it is on disk."""
        with self._lock:
            if event_id in self.seen:
                self.duplicates += 1
                return True
            pending = self._inflight.get(event_id)
            if pending is None:
                pending = _Pending(line)
                self._inflight[event_id] = pending
                self._queue.append(pending)
                self._cv.notify()
            else:
                self.duplicates += 1
        if not pending.done.wait(timeout):
            return False
        return pending.ok

    def _write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed and not self._queue:
                    return
                batch, self._queue = self._queue, []
            ok = True
            try:
                os.write(self._fd, b"".join(p.line for p in batch))
                os.fsync(self._fd)
            except OSError:
                log.exception("webhook landing: cannot write %s", self.path)
                ok = False
            with self._lock:
                for pending in batch:
                    event_id = orjson.loads(pending.line)["event"]["id"]
                    self._inflight.pop(event_id, None)
                    if ok:
                        self.seen.add(event_id)
                        self.landed += 1
                    pending.ok = ok
                    pending.done.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cv.notify_all()
        self._writer.join(timeout=10)
        os.close(self._fd)


def _ids_in(path: Path) -> list[str]:
    ids = []
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                try:
                    ids.append(orjson.loads(line)["event"]["id"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
    return ids


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Receiver:
    """The checks and the landing, independent of the HTTP server."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.landing = Landing(settings.landing_dir)
        self.rejected: dict[int, int] = {}

    def verify(self, body: bytes, header: str | None) -> None:
        if not header:
            raise RejectedError(400, "No Stripe-Signature header.")
        payload = body.decode("utf-8", errors="replace")
        last = "signature does not match"
        for secret in self.settings.secrets:
            try:
                stripe.WebhookSignature.verify_header(
                    payload, header, secret, self.settings.tolerance_seconds
                )
                return
            except stripe.SignatureVerificationError as err:
                last = str(err).split(";")[0]
                if "tolerance" in last:
                    stale = "Stale Stripe-Signature timestamp (over 300 s)."
                    raise RejectedError(400, stale) from None
        raise RejectedError(400, f"Bad Stripe-Signature: {last}")

    def accept(self, body: bytes, signature: str | None, account: str | None = None) -> str:
        """Verify, parse and land one delivery; the event id. `account`: the account the
        endpoint's path names, kept with an event that does not name its own."""
        self.verify(body, signature)
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise RejectedError(400, "Malformed JSON body.") from None
        if not isinstance(event, dict) or not (
            isinstance(event.get("id"), str)
            and isinstance(event.get("type"), str)
            and isinstance(event.get("created"), int)
        ):
            raise RejectedError(400, "Not a Stripe event (id, type and created are required).")
        landed: dict[str, Any] = {"received_at": time.time(), "event": event}
        if account and not event.get("account"):
            landed["account"] = account
        line = orjson.dumps(landed) + b"\n"
        if not self.landing.land(event["id"], line):
            raise RejectedError(503, "The event could not be made durable; retry.")
        return event["id"]

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "landing_file": self.landing.path.name,
            "landed": self.landing.landed,
            "duplicates": self.landing.duplicates,
            "known_events": len(self.landing.seen),
            "rejected": self.rejected,
        }


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    settings = receiver.settings

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            if status >= 400:
                receiver.rejected[status] = receiver.rejected.get(status, 0) + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._answer(200, receiver.health())
            elif account_of_path(self.path)[0]:
                self._answer(405, {"error": "POST Stripe events here."})
            else:
                self._answer(404, {"error": "Not found."})

        def do_POST(self) -> None:
            is_webhook, account = account_of_path(self.path)
            if not is_webhook:
                self._drain()
                self._answer(404, {"error": "Not found."})
                return
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self._answer(411, {"error": "Content-Length is required."})
                return
            if int(length) > settings.max_body_bytes:
                self.close_connection = True
                self._answer(413, {"error": f"Body over {settings.max_body_bytes} bytes."})
                return
            body = self.rfile.read(int(length))
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if content_type.lower() != "application/json":
                self._answer(415, {"error": "Content-Type must be application/json."})
                return
            try:
                event_id = receiver.accept(body, self.headers.get("Stripe-Signature"), account)
            except RejectedError as err:
                self._answer(err.status, {"error": str(err)})
                return
            self._answer(200, {"received": event_id})

        def do_PUT(self) -> None:
            self._drain()
            self._answer(405, {"error": "POST Stripe events here."})

        def do_DELETE(self) -> None:
            self.do_PUT()

        def do_PATCH(self) -> None:
            self.do_PUT()

        def _drain(self) -> None:
            length = self.headers.get("Content-Length")
            if length and length.isdigit() and int(length) <= settings.max_body_bytes:
                self.rfile.read(int(length))
            else:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("webhooks: " + format, *args)

    return Handler


class ReceiverServer:
    def __init__(self, settings: ReceiverSettings) -> None:
        self.receiver = Receiver(settings)
        handler = make_handler(self.receiver)
        self.httpd = ThreadingHTTPServer((settings.host, settings.port), handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def start(self) -> ReceiverServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.receiver.landing.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    load_dotenv(override=False)
    parser = argparse.ArgumentParser(prog="python -m ingestion.webhooks", description=__doc__)
    # A server stops on SIGTERM even when started from a process that ignores it (an
    # ignored signal is inherited across exec; some libraries leave SIGTERM ignored).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = ReceiverSettings.from_env()
    except ConfigurationError as err:
        print(f"stripe-elt webhooks: {err}", flush=True)
        return 2
    if args.port is not None or args.host:
        settings = ReceiverSettings(
            secrets=settings.secrets,
            landing_dir=settings.landing_dir,
            host=args.host or settings.host,
            port=args.port if args.port is not None else settings.port,
            max_body_bytes=settings.max_body_bytes,
        )
    try:
        server = ReceiverServer(settings)
    except OSError as err:
        print(
            f"stripe-elt webhooks: cannot start on {settings.host}:{settings.port} with the "
            f"landing folder {settings.landing_dir}: {err.strerror or err}",
            flush=True,
        )
        return 2
    print(
        f"Receiving Stripe webhooks on {server.url}, landing in {settings.landing_dir} "
        f"({len(settings.secrets)} signing secret(s)); Ctrl-C stops it.",
        flush=True,
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.receiver.landing.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
