"""One part of a large account's story, told and written in a process of its own.

python -m sandbox.part STAGING SEED CHARGES PART PARTS

Started by `sandbox.store.write_dataset_in_parts`, which merges what the parts leave.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

from sandbox.store import write_part


def main(argv: list[str]) -> tuple:
    staging, seed, charges, part, parts = argv
    # A short-lived process of millions of acyclic objects: the cyclic collector would only
    # walk them, again and again, as the ground truth and the orders are computed.
    gc.disable()
    return write_part(int(seed), int(charges), int(part), int(parts), Path(staging))


if __name__ == "__main__":
    try:
        told = main(sys.argv[1:])  # held, not freed: see below
    except OSError as exc:
        # What the system refused (a full disk, a folder that cannot be written), in one line
        # for the generator's error rather than a traceback.
        where = Path(sys.argv[1]).parent
        print(f"{exc.strerror or exc} (writing the dataset in {where})", file=sys.stderr)
        sys.exit(1)
    # Everything is written: the process ends without freeing what the part made (at 250k
    # charges, 800k lines and ids, the story's customers and orders, the export's lines) one
    # by one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
