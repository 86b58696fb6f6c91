"""Python's cyclic garbage collector during a load.

A load makes millions of short-lived dicts and lists (the parsed pages), none of them in a
cycle, beside the long-lived objects of the process (the modules and classes of dlt,
DuckDB, pyarrow and Dagster: about 150,000 after their imports). The collector runs after
every 700 new containers and, every few runs, scans every object the process holds, so a
load spent a tenth of its time there with nothing to collect (docs/benchmarks.md).
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


@contextmanager
def long_lived_set_aside() -> Iterator[None]:
    """The objects alive before the block left out of the collector's scans during it
    (`gc.freeze`), and handed back to it after (`gc.unfreeze`): a full collection in the
    block then scans what the block made, not the whole process. Unless objects were set
    aside already (a server that freezes before it forks): those are left as they are."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
