"""The dlt pipelines that land Stripe and CarePortals data in the warehouse's raw schemas."""

from __future__ import annotations

from pathlib import Path

import dlt

from ingestion.settings import pipelines_dir
from warehouse import RAW_CAREPORTALS_SCHEMA, RAW_STRIPE_SCHEMA, duckdb_path

# Parquet skips dlt's INSERT-statement loader, which is slow and memory-hungry at scale.
LOADER_FILE_FORMAT = "parquet"


def stripe_pipeline(database: Path | None = None, working_dir: Path | None = None) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="stripe",
        destination=dlt.destinations.duckdb(str(database or duckdb_path())),
        dataset_name=RAW_STRIPE_SCHEMA,
        pipelines_dir=str(working_dir or pipelines_dir()),
    )


def careportals_pipeline(
    database: Path | None = None, working_dir: Path | None = None
) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="careportals",
        destination=dlt.destinations.duckdb(str(database or duckdb_path())),
        dataset_name=RAW_CAREPORTALS_SCHEMA,
        pipelines_dir=str(working_dir or pipelines_dir()),
    )
