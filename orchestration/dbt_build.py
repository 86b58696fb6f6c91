"""How the pipeline builds the dbt project: shared by the Dagster asset and the benchmark,
which must not load the Dagster definitions (and dbt's manifest) to learn it."""

# Every model, seed and data test. The unit tests check the models' SQL on fixed inputs, not
# the data: `make test` runs them and production builds leave them out, as dbt advises (at
# 10k charges they were a fifth of every build).
DBT_BUILD_ARGS = ["build", "--exclude-resource-type", "unit_test"]
