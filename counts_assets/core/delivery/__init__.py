"""Delivery without Dagster: outbox and SFTP targets behind one interface, the rule that
decides each pair from versions (`plan`), retries over one connection, and the audit's rules."""
