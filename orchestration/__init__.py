"""Dagster wiring: assets, resources, jobs and schedules around ingestion, dbt and publishing."""
