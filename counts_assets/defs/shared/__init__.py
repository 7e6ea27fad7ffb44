"""What every domain shares: the cadences and their partitions, reading the instance's records,
run tags, the shared resources and the event-log batch writer."""
