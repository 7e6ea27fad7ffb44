"""Daily and monthly export assets with their data-quality checks."""
