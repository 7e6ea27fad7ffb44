"""The organizations domain: the organization files, their permission letters, and the sensor
that keeps the `orgs` partitions in step with them."""
