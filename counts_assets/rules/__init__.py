"""Business rules of the contract (§1-§4) as plain, Dagster-free, vectorised pandas functions."""
