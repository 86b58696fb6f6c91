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

HTTP is served by uvicorn (uvloop's event loop, httptools' parser) with the small ASGI app
below; the checks run on the loop, and one writer thread does the writes and fsyncs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import stripe
import uvicorn

from ingestion.settings import ConfigurationError, int_env, webhook_secrets
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
            port=int_env(env, "WEBHOOK_PORT", cls.port),
            max_body_bytes=int_env(env, "WEBHOOK_MAX_BODY_BYTES", cls.max_body_bytes),
        )


def landing_dir_from_env() -> Path:
    return Path(os.environ.get("WEBHOOK_LANDING_DIR", ReceiverSettings.landing_dir))


class RejectedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Pending:
    event_id: str
    line: bytes
    # The requests waiting for it, each on its server's event loop.
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)


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

    async def land(self, event_id: str, line: bytes, timeout: float = 10.0) -> bool:
        """Make the event durable (or find it already is); True once it is on disk."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._lock:
            if event_id in self.seen:
                self.duplicates += 1
                return True
            pending = self._inflight.get(event_id)
            if pending is None:
                pending = _Pending(event_id, line)
                self._inflight[event_id] = pending
                self._queue.append(pending)
                self._cv.notify()
            else:
                self.duplicates += 1
            pending.waiters.append(future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return False

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
            answers: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
            with self._lock:
                for pending in batch:
                    self._inflight.pop(pending.event_id, None)
                    if ok:
                        self.seen.add(pending.event_id)
                        self.landed += 1
                    for future in pending.waiters:
                        answers.setdefault(future.get_loop(), []).append(future)
            # One wake-up of each waiting loop per group, not one per event.
            for loop, futures in answers.items():
                # RuntimeError: that loop has closed, and nobody waits any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_answer_all, futures, ok)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._cv.notify_all()
        self._writer.join(timeout=10)
        os.close(self._fd)


def _answer_all(futures: list[asyncio.Future[bool]], ok: bool) -> None:
    for future in futures:
        if not future.done():  # a waiter that timed out has cancelled its future
            future.set_result(ok)


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

    async def accept(self, body: bytes, signature: str | None, account: str | None = None) -> str:
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
        if not await self.landing.land(event["id"], line):
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


_Send = Callable[[dict[str, Any]], Awaitable[None]]
_Receive = Callable[[], Awaitable[dict[str, Any]]]


def make_app(receiver: Receiver) -> Callable[..., Awaitable[None]]:
    """The ASGI app: the statuses of the module's docstring, JSON bodies."""
    settings = receiver.settings

    async def answer(send: _Send, status: int, body: dict[str, Any], close: bool = False) -> None:
        data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)  # health: {400: n}
        if status >= 400:
            receiver.rejected[status] = receiver.rejected.get(status, 0) + 1
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(data)).encode())]  # fmt: skip
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def app(scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/healthz":
            await answer(send, 200, receiver.health())
            return
        is_webhook, account = account_of_path(path)
        if not is_webhook:
            await answer(send, 404, {"error": "Not found."})
            return
        if method != "POST":
            await answer(send, 405, {"error": "POST Stripe events here."})
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").decode("latin-1")
        if not length.isdigit():
            await answer(send, 411, {"error": "Content-Length is required."}, close=True)
            return
        if int(length) > settings.max_body_bytes:
            error = f"Body over {settings.max_body_bytes} bytes."
            await answer(send, 413, {"error": error}, close=True)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != "application/json":
            await answer(send, 415, {"error": "Content-Type must be application/json."})
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to land
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        signature = headers.get(b"stripe-signature")
        try:
            event_id = await receiver.accept(
                b"".join(chunks), signature.decode("latin-1") if signature else None, account
            )
        except RejectedError as err:
            await answer(send, err.status, {"error": str(err)})
            return
        await answer(send, 200, {"received": event_id})

    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Made with its protocol named, as asyncio wants to turn Nagle's
    algorithm off on the connections (`socket.create_server` leaves it 0, and then every
    answer, written as head and body, waits for the client's delayed ACK: 40 ms)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class ReceiverServer:
    """The receiver on its socket: `serve()` in this thread, or `start()` one of its own."""

    def __init__(self, settings: ReceiverSettings) -> None:
        # Bound here, so that a port in use is an OSError for the caller, not an exit; and
        # first, so that it leaves no landing file behind.
        self.socket = _listen(settings.host, settings.port)
        try:
            self.receiver = Receiver(settings)
        except BaseException:
            self.socket.close()
            raise
        config = uvicorn.Config(
            make_app(self.receiver), lifespan="off", http="httptools", loop="uvloop",
            log_config=None, log_level="warning", access_log=False, server_header=False,
            timeout_graceful_shutdown=10,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def serve(self) -> None:
        """Serve until SIGINT or SIGTERM (in the main thread) or `stop()`."""
        self.server.run(sockets=[self.socket])

    def start(self) -> ReceiverServer:
        self._thread = threading.Thread(target=self.serve, daemon=True, name="receiver")
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The webhook receiver did not start on {self.url}.")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.close()

    def close(self) -> None:
        self.socket.close()
        self.receiver.landing.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    from dotenv import load_dotenv

    load_dotenv(override=False)
    parser = argparse.ArgumentParser(prog="python -m ingestion.webhooks", description=__doc__)
    # SIGTERM stops the server gracefully (uvicorn: in-flight requests are answered), then
    # ends the process through this handler, which also holds when the process was started
    # with SIGTERM ignored (an ignored signal is inherited across exec).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Ctrl-C; and SIGINT also stops a receiver a script started in the background (which
    # starts it with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
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
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
