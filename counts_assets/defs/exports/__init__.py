"""The exports domain: the daily and monthly export assets, their checks and records, the jobs
and the schedules that make them."""
