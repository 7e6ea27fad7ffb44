"""The delivery domain: the delivery ledger, the runs that send pairs, the sensor that requests
them, journal recovery and the delivery audit."""
