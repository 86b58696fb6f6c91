"""Load for the webhook receiver, from a process of its own on loopback.

    python -m benchmarks.webhook_load --url http://127.0.0.1:8787/webhooks/stripe \
        --secret whsec_... --template charges.jsonl --events 20000 --connections 32

Each event is a real Stripe event (`charge.succeeded` around a charge of the sandbox, with
its own id), signed as Stripe signs, sent over keep-alive connections as fast as the receiver
answers. Bounded in count and in time. Prints one JSON line: accepted events/s and latency
percentiles (from the request's first byte to the answer's last).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from sandbox.webhooks import sign


def requests(template: dict, count: int, secret: str, host: str, path: str) -> list[bytes]:
    """`count` signed HTTP requests, each a distinct event."""
    stamp = int(time.time())
    out = []
    for n in range(count):
        event = {
            "id": f"evt_bench{stamp}{n:08d}",
            "object": "event",
            "api_version": "2025-09-30.clover",
            "created": stamp,
            "type": "charge.succeeded",
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": template},
        }
        body = orjson.dumps(event)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nStripe-Signature: {sign(body, secret, stamp)}\r\n"
            "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _connection(host, port, queue, latencies, statuses, deadline) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def drive(url: str, batch: list[bytes], connections: int, seconds: float) -> dict:
    parts = urlsplit(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(batch))
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(
            _connection(parts.hostname, parts.port, queue, latencies, statuses, deadline)
            for _ in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 2)

    accepted = statuses.get(200, 0)
    return {
        "sent": len(latencies),
        "accepted": accepted,
        "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": elapsed,
        "events_per_second": accepted / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 2),
        "connections": connections,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--template", type=Path, required=True, help="a JSON-lines file of charges")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    with open(args.template, "rb") as f:
        template = orjson.loads(f.readline())
    parts = urlsplit(args.url)
    batch = requests(template, args.events, args.secret, parts.netloc, parts.path)
    result = asyncio.run(drive(args.url, batch, args.connections, args.seconds))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
