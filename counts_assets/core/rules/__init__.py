"""Business rules as plain, Dagster-free, vectorised pandas functions."""
