"""Command line of the Stripe sandbox.

python -m sandbox generate --seed 42 --charges 2000     # write a dataset, print its folder
python -m sandbox serve [--seed 42 --charges 2000 --port 12111 --accounts 0]
        [--webhook-url http://127.0.0.1:8787/webhooks/stripe --webhook-secret whsec_...]
        [--faults 429=0.05,500=0.02,drop=0.02,slow=0.05]
python -m sandbox advance [--days 1 | --seconds N] [--changes N]   # on the running server
python -m sandbox reset                                  # forget every advance
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from sandbox import generator, settings
from sandbox.server import SANDBOX_API_KEY, SandboxServer, SandboxState
from sandbox.store import dataset_dir, ensure_dataset
from sandbox.webhooks import Faults

# What `generate` made, kept until the process ends (see the end of this file).
_GENERATED: list = []


def main(argv: list[str] | None = None) -> int:
    # A server stops on SIGTERM even when started from a process that ignores it (an
    # ignored signal is inherited across exec; some libraries leave SIGTERM ignored).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    defaults = settings.SandboxSettings.from_env()
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("command", choices=["generate", "serve", "advance", "reset"])
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--charges", type=int, default=defaults.charges)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument(
        "--accounts", type=int, default=defaults.accounts,
        help="connected accounts of the platform account (Stripe Connect)",
    )  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir)
    parser.add_argument("--webhook-url", default=os.environ.get("SANDBOX_WEBHOOK_URL"))
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("SANDBOX_WEBHOOK_SECRET") or os.environ.get("STRIPE_WEBHOOK_SECRET"),
    )
    parser.add_argument("--faults", default=os.environ.get("SANDBOX_FAULTS", ""))
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--changes", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.command == "advance":
        return _advance(args)
    if args.command == "reset":
        folder = dataset_dir(args.data_dir, args.seed, args.charges, args.accounts)
        shutil.rmtree(folder, ignore_errors=True)
        print(f"Removed {folder}; it is generated again on the next start.")
        return 0
    keep = _GENERATED if args.command == "generate" else None
    try:
        folder = ensure_dataset(args.data_dir, args.seed, args.charges, args.accounts, keep)
    except OSError as err:
        # Nothing is left half-written: a dataset is written to a staging folder first.
        print(f"Cannot write the sandbox's dataset under {args.data_dir}: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        # A part of a large account failed in its own process (sandbox.store); nothing left.
        print(f"Cannot generate the sandbox's dataset: {err}", file=sys.stderr)
        return 1
    if args.command == "generate":
        print(folder)
        return 0
    try:
        faults = Faults.parse(args.faults)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    state = SandboxState(folder, faults=faults)
    server = SandboxServer(state, port=args.port)
    if args.webhook_url:
        endpoint = state.add_endpoint(args.webhook_url, ["*"], args.webhook_secret)
        secret = "the secret given" if args.webhook_secret else endpoint.secret
        print(f"Webhooks go to {args.webhook_url}, signed with {secret}", flush=True)
    if faults.any:
        print(f"Injecting faults: {faults}", flush=True)
    for k, account_id in enumerate(state.connected, 1):
        print(f"Connected account {account_id}: Stripe-Account header with the platform's "
              f"key, or its own key {SANDBOX_API_KEY}_{k}", flush=True)  # fmt: skip
    print(f"Stripe sandbox serving {folder.name} on {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


def _advance(args: argparse.Namespace) -> int:
    """Ask the running sandbox to advance its clock."""
    seconds = args.seconds if args.seconds is not None else int(args.days * 86_400)
    form = {"seconds": seconds}
    if args.changes:
        form["changes"] = args.changes
    request = urllib.request.Request(
        f"http://127.0.0.1:{args.port}/v1/test_helpers/advance",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            result = json.loads(answer.read())
    except urllib.error.HTTPError as err:
        print(f"The sandbox refused: {err.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError):
        print(f"No sandbox answers on port {args.port}: start it (make sandbox).", file=sys.stderr)
        return 1
    print(
        f"The sandbox's clock is now {result['now']}; {result['events']} events; "
        f"changed: {result['changed']}"
    )
    return 0


if __name__ == "__main__":
    # This process is the sandbox: what it builds may stay out of the collector's walks.
    generator.freeze_after_pause = True
    code = main()
    if _GENERATED:
        # The dataset's files are complete (its manifest is written last): the process
        # ends without freeing millions of objects one by one (at 1M charges, about 11 s).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
