"""The health domain: the operator's view of the fleet (`fleet_health`) and the alerts."""
