"""Python's cyclic garbage collector during a load.

A load makes millions of short-lived dicts and lists (the parsed pages), none of them in a
cycle, beside the long-lived objects of the process (the modules and classes of dlt,
DuckDB, pyarrow and Dagster: about 150,000 after their imports). The collector runs after
every 700 new containers and, every few runs, scans every object the process holds, so a
load spent a tenth of its time there with nothing to collect (docs/benchmarks.md).
Setting the long-lived objects aside for a load (`gc.freeze`) was tried too: it saved
another 0.05 s at 10k but raised the 1M load's peak memory by 25-40 MB, close to its
1 GB target, and is not done.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, unless something else had turned it off already
    (then it is left off). For a block that makes many objects and no cycles: objects
    made in it are collected as usual once it ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
