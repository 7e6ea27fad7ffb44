"""211 Counts export platform: daily and monthly files for many 2-1-1 organizations."""
