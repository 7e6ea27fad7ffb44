"""The contact-record store (contract §2)."""
