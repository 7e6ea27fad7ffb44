"""Delivery: outbox and SFTP targets behind one interface, the rule that decides each pair from
versions (`plan`), the ledger's readers, retries over one connection, and the audit's rules."""
