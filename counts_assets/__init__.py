"""211 Counts export platform: daily and monthly files for many 2-1-1 organizations."""

import zoneinfo

# Call Dates follow the time zone database pinned in requirements.lock (the `tzdata` package),
# never the copy the operating system happens to ship: every machine makes the same files, with
# the newest rules the lock holds. Every process of the platform imports this package first.
zoneinfo.reset_tzpath(to=())
zoneinfo.ZoneInfo.clear_cache()
