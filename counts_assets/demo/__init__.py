"""Demo: a realistic contact-record store and a one-command run on the embedded default."""
