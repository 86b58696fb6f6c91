"""A generated account on disk: the objects the server serves, the ground truth for tests and
the orders as CarePortals exports them.

Layout of a dataset folder:
    manifest.json            seed, size, account id
    account.json             the account object (GET /v1/account)
    objects/<name>.jsonl     one object per line, newest first, as the API lists them; an
                             account told in parts (sandbox.generator.story_parts) has one
                             file per part, <name>.jsonl and <name>.<part>.jsonl
    ground_truth.json        counts and per-currency totals (sandbox.truth)
    careportals_orders.csv   the orders, as the CarePortals export writes them
    connected/<k>/           with connected accounts: each a dataset folder of its own (the
                             top export then holds every account's orders: one CarePortals)
"""

from __future__ import annotations

import contextlib
import csv
import functools
import heapq
import json
import logging
import multiprocessing
import operator
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from sandbox import catalog
from sandbox.generator import (
    CATALOG_LISTS,
    OBJECT_TYPES,
    Dataset,
    Written,
    account_of,
    gc_paused,
    generate,
    generate_part,
    story_parts,
)
from sandbox.truth import Sums, ground_truth, ground_truth_of, utc_date

log = logging.getLogger(__name__)

FORMAT_VERSION = 7
ORDERS_FILE = "careportals_orders.csv"
ORDER_COLUMNS = [
    "order_id",
    "customer_email",
    "total",
    "currency",
    "status",
    "created_at",
    "product",
    "category",
]


CONNECTED_DIR = "connected"


def dataset_dir(root: Path, seed: int, charges: int, accounts: int = 0) -> Path:
    name = f"v{FORMAT_VERSION}-seed{seed}-charges{charges}"
    return Path(root) / (f"{name}-accounts{accounts}" if accounts else name)


def connected_seed(seed: int, index: int) -> int:
    """The seed of the platform's `index`-th connected account (1-based)."""
    return seed * 1_000 + index


def connected_charges(charges: int) -> int:
    """A connected account (a partner clinic) is a quarter of the platform's size."""
    return max(50, charges // 4)


def generate_connected(seed: int, charges: int, index: int) -> Dataset:
    data = generate(connected_seed(seed, index), connected_charges(charges))
    data.account["business_profile"]["name"] = f"CarePortals Partner Clinic {index}"
    data.account["settings"]["dashboard"]["display_name"] = f"Partner Clinic {index}"
    data.account["email"] = f"finance+clinic{index}@careportals.example"
    return data


def ensure_dataset(
    root: Path, seed: int, charges: int, accounts: int = 0, keep: list | None = None
) -> Path:
    """The folder of the dataset for (seed, charges) with `accounts` connected accounts,
    generating it the first time. A generated dataset is appended to `keep` when given,
    for a caller that ends its process without freeing the objects."""
    target = dataset_dir(root, seed, charges, accounts)
    if (target / "manifest.json").exists():
        return target
    connected = [generate_connected(seed, charges, k) for k in range(1, accounts + 1)]
    if story_parts(charges) > 1:
        write_dataset_in_parts(seed, charges, target, connected)
    else:
        data = generate(seed, charges)
        write_dataset(data, target, connected)
        if keep is not None:
            keep.append(data)
    if keep is not None:
        keep.append(connected)
    return target


def object_files(folder: Path, name: str) -> list[Path]:
    """The files holding a dataset's objects of the list `name`, in order."""
    objects = Path(folder) / "objects"
    parts = sorted(objects.glob(f"{name}.*.jsonl"), key=lambda p: int(p.suffixes[-2][1:]))
    return [objects / f"{name}.jsonl", *parts]


@contextlib.contextmanager
def _staged(target: Path):
    """A staging folder that becomes `target` when the block succeeds: a reader sees the
    whole dataset or none of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_connected(staging: Path, account_id: str, connected: list[Dataset]) -> None:
    for index, child in enumerate(connected, 1):
        folder = staging / CONNECTED_DIR / str(index)
        folder.mkdir(parents=True)
        _write_account(child, folder, {"connected_to": account_id, "index": index})


def write_dataset(data: Dataset, target: Path, connected: list[Dataset] | None = None) -> None:
    """Write a dataset (and its connected accounts) atomically."""
    with _staged(target) as staging:
        _write_connected(staging, data.account["id"], connected or [])
        orders = [o for account in [data, *(connected or [])] for o in account.orders]
        orders.sort(key=lambda o: (o["created_at"], o["order_id"]))
        _write_account(data, staging, {"connected_accounts": len(connected or [])}, orders)


def write_dataset_in_parts(
    seed: int,
    charges: int,
    target: Path,
    connected: list[Dataset] | None = None,
    parts: int | None = None,
) -> None:
    """Write a dataset told in parts (and its connected accounts) atomically: each part is
    told and written by a process of its own (`sandbox.part`), as many at a time as there are
    cores, and this process adds up their ground truth and merges their orders."""
    parts = story_parts(charges) if parts is None else parts
    data = account_of(seed, charges)
    data.parts = parts
    connected = connected or []
    with _staged(target) as staging, gc_paused():
        (staging / "objects").mkdir()
        started = time.perf_counter()
        results = _tell_parts(seed, charges, parts, staging)
        for part, result in enumerate(results):
            log.info("part %d of %d: %s s", part + 1, parts, result["seconds"])
        told = time.perf_counter()
        _write_connected(staging, data.account["id"], connected)
        (staging / "account.json").write_bytes(orjson.dumps(data.account))
        schedule = [phase for result in results for phase in result["mrr_schedule"]]
        truth = ground_truth_of(data, [result["sums"] for result in results], schedule)
        (staging / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        rows = [result["orders"] for result in results]
        rows += [order_rows(account.orders) for account in connected]
        write_order_rows(heapq.merge(*rows, key=operator.itemgetter(0, 1)), staging / ORDERS_FILE)
        _write_manifest(data, staging, {"connected_accounts": len(connected)})
        log.info(
            "%d parts told and written in %.1f s; merged in %.1f s",
            parts, told - started, time.perf_counter() - told,
        )  # fmt: skip


def _part_environment() -> dict[str, str]:
    """A part's process allocates through glibc's malloc with transparent huge pages where the
    kernel offers them: a part builds gigabytes of small objects, and with 4 KiB pages it
    spends a third of its time in page faults and its writing waits on address translation
    (300k charges: 23.1 s telling and 15.3 s writing, against 19.3 s and 8.0 s)."""
    env = dict(os.environ)
    # The part's process imports this project from wherever the caller runs.
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return env
    if "[never]" in thp:
        return env
    env["PYTHONMALLOC"] = "malloc"
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    env["GLIBC_TUNABLES"] = ":".join([*tunables, "glibc.malloc.hugetlb=1"])
    return env


# What a part's process leaves for the process that merges the parts.
PART_RESULT = ".part-{}.pickle"


class _OutputTail:
    """The last few thousand bytes a part's process prints, read from its pipe as it runs:
    kept in memory, not in a file, so a part that fails because the disk is full still
    says why."""

    KEEP = 4000

    def __init__(self, stream) -> None:
        self._tail = b""
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        with stream:
            for chunk in iter(lambda: stream.read1(65536), b""):
                self._tail = (self._tail + chunk)[-self.KEEP :]

    def text(self) -> str:
        self._thread.join(timeout=5)
        return self._tail.decode(errors="replace").strip()[-2000:]


def _tell_parts(seed: int, charges: int, parts: int, staging: Path) -> list[dict]:
    """Run the parts' processes, at most one per core at a time; their results, in order."""
    env = _part_environment()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    at_once = max(1, min(parts, cores or 1))
    waiting = list(range(parts))
    running: dict[int, subprocess.Popen] = {}
    outputs: dict[int, _OutputTail] = {}
    try:
        while waiting or running:
            while waiting and len(running) < at_once:
                part = waiting.pop(0)
                running[part] = subprocess.Popen(
                    [sys.executable, "-m", "sandbox.part", str(staging), str(seed),
                     str(charges), str(part), str(parts)],
                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                )  # fmt: skip
                outputs[part] = _OutputTail(running[part].stdout)
            done = [part for part, proc in running.items() if proc.poll() is not None]
            for part in done:
                code = running.pop(part).returncode
                if code != 0:
                    tail = outputs[part].text()
                    raise RuntimeError(
                        f"generating part {part + 1} of {parts} of the sandbox's account failed "
                        f"(exit code {code})" + (f": {tail}" if tail else "")
                    )
            if not done:
                time.sleep(0.05)
    finally:
        for proc in running.values():
            proc.kill()
            proc.wait()
    results = []
    for part in range(parts):
        result_file = staging / PART_RESULT.format(part)
        with open(result_file, "rb") as f:
            results.append(pickle.load(f))
        result_file.unlink()
    return results


def write_part(seed: int, charges: int, part: int, parts: int, staging: Path) -> tuple:
    """Tell part `part` of the story and write its objects (the catalogue with part 0 only)
    to `staging`, and its ground-truth sums, billing schedule and orders for the merge. Each
    object is serialised and counted as soon as it is final (`Written`), not once all are
    built. Everything the part made (the story, what was written, the merge's result) is
    returned for a caller that ends its process without freeing it: freeing the story's
    customers and orders and the export's lines one by one took about a second."""
    started = time.perf_counter()
    added = Sums()
    written = Written(observe=added.add)
    story = generate_part(seed, charges, part, parts, written)
    data = story.data
    told = time.perf_counter()
    names = [name for name in OBJECT_TYPES if part == 0 or name not in CATALOG_LISTS]
    suffix = "" if part == 0 else f".{part}"
    for name in names:
        with open(staging / "objects" / f"{name}{suffix}.jsonl", "wb") as out:
            written.write(name, out)
    written_at = time.perf_counter()
    result = {
        "sums": added.result(orders=len(data.orders)),
        "mrr_schedule": data.mrr_schedule,
        "orders": order_rows(data.orders),
    }
    result["seconds"] = {
        "told": round(told - started, 1),
        "written": round(written_at - told, 1),
        "summed": round(time.perf_counter() - written_at, 1),
    }
    with open(staging / PART_RESULT.format(part), "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    return story, written, result


# Above this many objects the object files are written by two forked writers, the charges
# (about half of the bytes) in one and the other lists in the other, while the ground truth
# and the orders are written here (1M charges: 3.3M objects, 5 GB of JSON).
PARALLEL_WRITE_OBJECTS = 300_000
_WRITE_CHUNK = 10_000


def _write_objects(data: Dataset, folder: Path, names: list[str]) -> None:
    for name in names:
        objs = data.objects[name]
        with open(folder / "objects" / f"{name}.jsonl", "wb") as out:
            for i in range(0, len(objs), _WRITE_CHUNK):
                chunk = objs[i : i + _WRITE_CHUNK]
                out.write(
                    b"".join([orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE) for o in chunk])
                )


def _start_writers(data: Dataset, folder: Path) -> list:
    """Write the object files: here for a small account; for a large one, start the two
    writers and return them."""
    (folder / "objects").mkdir()
    if sum(len(objs) for objs in data.objects.values()) < PARALLEL_WRITE_OBJECTS:
        _write_objects(data, folder, list(OBJECT_TYPES))
        return []
    groups = [["charges"], [name for name in OBJECT_TYPES if name != "charges"]]
    context = multiprocessing.get_context("fork")
    writers = [
        context.Process(target=_write_objects, args=(data, folder, names), daemon=True)
        for names in groups
    ]
    for writer in writers:
        writer.start()
    return writers


def _join_writers(writers: list) -> None:
    for writer in writers:
        writer.join()
    failed = [w.exitcode for w in writers if w.exitcode != 0]
    if failed:
        raise RuntimeError(f"writing the generated objects failed (writer exit codes {failed})")


def _write_account(data: Dataset, folder: Path, extra: dict, orders: list | None = None) -> None:
    writers = _start_writers(data, folder)
    try:
        (folder / "account.json").write_bytes(orjson.dumps(data.account))
        truth = ground_truth(data)
        (folder / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        write_orders_csv(data.orders if orders is None else orders, folder / ORDERS_FILE)
    finally:
        _join_writers(writers)
    _write_manifest(data, folder, extra)


def _write_manifest(data: Dataset, folder: Path, extra: dict) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": data.seed,
        "charges_requested": data.charges_requested,
        "account_id": data.account["id"],
        "parts": data.parts,
        **extra,
    }
    # The manifest is written last: its presence marks a complete dataset.
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def connected_folders(folder: Path) -> list[Path]:
    """The dataset folders of a dataset's connected accounts, in order."""
    root = Path(folder) / CONNECTED_DIR
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def major_units(amount_minor: int, currency: str) -> str:
    """An exact decimal string of a minor-unit amount, as an export shows money."""
    exponent = catalog.CURRENCY_EXPONENT[currency]
    if exponent == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"


def write_orders_csv(orders: list[dict], path: Path) -> None:
    write_order_rows(order_rows(orders), path)


def order_rows(orders: list[dict]) -> list[tuple[int, str, str]]:
    """Each order's line of the export, with what the export is ordered by (its time and id)."""
    lines: list[str] = []
    writer = csv.writer(_Lines(lines))  # one write() per row: the row's whole line
    # Totals and times of day repeat across a large account's orders: each is formatted once.
    # With the line below made without the csv module: 9.5 us a row against 15.3 us.
    total_text = functools.cache(major_units)
    for o in orders:
        day, second = divmod(o["created_at"], 86_400)
        fields = [
            o["order_id"],
            o["customer_email"],
            total_text(o["total_minor"], o["currency"]),
            o["currency"].upper(),
            o["status"],
            utc_date(day) + _clock(second),
            o["product"],
            o["category"],
        ]
        line = ",".join(fields)
        # The csv module's line when no field needs quoting (none holds a comma, a quote or
        # a line break), made without it.
        if line.count(",") == _ORDER_COMMAS and not _NEEDS_QUOTES.search(line):
            lines.append(line + "\r\n")
        else:
            writer.writerow(fields)
    return [(o["created_at"], o["order_id"], line) for o, line in zip(orders, lines, strict=True)]


@functools.cache
def _clock(second: int) -> str:
    """The time of day of `second` (from midnight, UTC) as the export writes it."""
    hour, second = divmod(second, 3_600)
    return f"T{hour:02d}:{second // 60:02d}:{second % 60:02d}Z"


_ORDER_COMMAS = len(ORDER_COLUMNS) - 1
_NEEDS_QUOTES = re.compile(r'["\r\n]')


class _Lines:
    def __init__(self, lines: list[str]) -> None:
        self.write = lines.append


def write_order_rows(rows, path: Path) -> None:
    """The export of `rows` (from `order_rows`, in order)."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerow(ORDER_COLUMNS)
        out.writelines(row[2] for row in rows)


def load_ground_truth(folder: Path) -> dict:
    return json.loads((Path(folder) / "ground_truth.json").read_text())
