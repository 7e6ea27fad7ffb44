"""The Dagster definitions, one folder per domain (organizations, exports, delivery, health)
over `shared` (cadences, partitions, records, run tags, resources). Each domain's
`definitions.py` gathers its assets, checks, jobs, schedules and sensors; the platform merges
them in `counts_assets.definitions`."""
