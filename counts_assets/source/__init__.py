"""The contact-record store."""
