"""A generated account on disk: the objects the server serves, the ground truth for tests and
the orders as CarePortals exports them.

Layout of a dataset folder:
    manifest.json            seed, size, account id
    account.json             the account object (GET /v1/account)
    objects/<name>.jsonl     one object per line, newest first, as the API lists them
    ground_truth.json        counts and per-currency totals (sandbox.truth)
    careportals_orders.csv   the orders, as the CarePortals export writes them
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import orjson

from sandbox import catalog
from sandbox.generator import OBJECT_TYPES, Dataset, generate
from sandbox.truth import ground_truth

FORMAT_VERSION = 4
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


def dataset_dir(root: Path, seed: int, charges: int) -> Path:
    return Path(root) / f"v{FORMAT_VERSION}-seed{seed}-charges{charges}"


def ensure_dataset(root: Path, seed: int, charges: int) -> Path:
    """The folder of the dataset for (seed, charges), generating it the first time."""
    target = dataset_dir(root, seed, charges)
    if (target / "manifest.json").exists():
        return target
    write_dataset(generate(seed, charges), target)
    return target


def write_dataset(data: Dataset, target: Path) -> None:
    """Write a dataset atomically: a reader sees the whole folder or none of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        (staging / "objects").mkdir()
        for name in OBJECT_TYPES:
            with open(staging / "objects" / f"{name}.jsonl", "wb") as out:
                for obj in data.objects[name]:
                    out.write(orjson.dumps(obj))
                    out.write(b"\n")
        (staging / "account.json").write_bytes(orjson.dumps(data.account))
        truth = ground_truth(data)
        (staging / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        write_orders_csv(data.orders, staging / ORDERS_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "seed": data.seed,
            "charges_requested": data.charges_requested,
            "account_id": data.account["id"],
        }
        # The manifest is written last: its presence marks a complete dataset.
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
            created = dt.datetime.fromtimestamp(o["created_at"], dt.UTC)
            writer.writerow(
                [
                    o["order_id"],
                    o["customer_email"],
                    major_units(o["total_minor"], o["currency"]),
                    o["currency"].upper(),
                    o["status"],
                    created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    o["product"],
                    o["category"],
                ]
            )


def load_ground_truth(folder: Path) -> dict:
    return json.loads((Path(folder) / "ground_truth.json").read_text())
