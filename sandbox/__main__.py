"""Command line of the Stripe sandbox.

python -m sandbox generate --seed 42 --charges 2000     # write a dataset, print its folder
python -m sandbox serve [--seed 42 --charges 2000 --port 12111]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sandbox import settings
from sandbox.server import SandboxServer, SandboxState
from sandbox.store import ensure_dataset


def main(argv: list[str] | None = None) -> int:
    defaults = settings.SandboxSettings.from_env()
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("command", choices=["generate", "serve"])
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--charges", type=int, default=defaults.charges)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--data-dir", type=Path, default=defaults.data_dir)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    folder = ensure_dataset(args.data_dir, args.seed, args.charges)
    if args.command == "generate":
        print(folder)
        return 0
    server = SandboxServer(SandboxState(folder), port=args.port)
    print(f"Stripe sandbox serving {folder.name} on {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
