"""dlt sources for Stripe and CarePortals orders; importable and runnable without Dagster."""
