"""Sensors: the org registry and delivery."""
