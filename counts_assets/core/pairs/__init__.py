"""The pair: a period's summary file and needs file, published, recorded, checked and delivered
together. See `docs/pairs.md` for the model."""
