"""Delivery: outbox and SFTP targets behind one interface, exactly once per
content, recorded per org and period."""
