"""A generated account on disk: the objects the server serves, the ground truth for tests and
the orders as CarePortals exports them.

Layout of a dataset folder:
    manifest.json            seed, size, account id
    account.json             the account object (GET /v1/account)
    objects/<name>.jsonl     one object per line, newest first, as the API lists them
    ground_truth.json        counts and per-currency totals (sandbox.truth)
    careportals_orders.csv   the orders, as the CarePortals export writes them
    connected/<k>/           with connected accounts: each a dataset folder of its own (the
                             top export then holds every account's orders: one CarePortals)
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from sandbox import catalog
from sandbox.generator import OBJECT_TYPES, Dataset, generate
from sandbox.truth import ground_truth, utc_date

FORMAT_VERSION = 5
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
    data = generate(seed, charges)
    write_dataset(data, target, connected)
    if keep is not None:
        keep.extend([data, connected])
    return target


def write_dataset(data: Dataset, target: Path, connected: list[Dataset] | None = None) -> None:
    """Write a dataset (and its connected accounts) atomically: a reader sees the whole
    folder or none of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for index, child in enumerate(connected or [], 1):
            folder = staging / CONNECTED_DIR / str(index)
            folder.mkdir(parents=True)
            _write_account(child, folder, {"connected_to": data.account["id"], "index": index})
        orders = [o for account in [data, *(connected or [])] for o in account.orders]
        orders.sort(key=lambda o: (o["created_at"], o["order_id"]))
        _write_account(data, staging, {"connected_accounts": len(connected or [])}, orders)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
    manifest = {
        "format_version": FORMAT_VERSION,
        "seed": data.seed,
        "charges_requested": data.charges_requested,
        "account_id": data.account["id"],
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
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(ORDER_COLUMNS)
        for o in orders:
            day, second = divmod(o["created_at"], 86_400)
            hour, second = divmod(second, 3_600)
            writer.writerow(
                [
                    o["order_id"],
                    o["customer_email"],
                    major_units(o["total_minor"], o["currency"]),
                    o["currency"].upper(),
                    o["status"],
                    f"{utc_date(day)}T{hour:02d}:{second // 60:02d}:{second % 60:02d}Z",
                    o["product"],
                    o["category"],
                ]
            )


def load_ground_truth(folder: Path) -> dict:
    return json.loads((Path(folder) / "ground_truth.json").read_text())
