"""Automation: which partitions are due, the schedules that request them, failure alerts."""
