"""Making a run's files: building both files from the source tables, validating and publishing
them as pairs, and the monthly reconciliation against the daily files."""
