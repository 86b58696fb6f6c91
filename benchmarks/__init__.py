"""stripe-elt's benchmarks: `make bench` (or `python -m benchmarks`).

They measure, side by side in one run, how fast the pipeline loads a Stripe account and how
its cost grows: full load against a naive baseline, incremental runs, dbt builds, the webhook
receiver, webhook-to-mart latency and the Sheets publish. Figures are printed and written to
`.state/bench/`; `docs/benchmarks.md` keeps the recorded results. Tests assert behaviour,
never these figures.
"""
