"""The Dagster-free core: the business rules, the source reader, the file formats, validation,
the pair store and the delivery targets, as plain functions and classes tested without Dagster.
Nothing here imports Dagster (checked by `lint-imports`)."""
