"""The load service: the load generator: open-loop load with HDR percentiles against a service found through the broker."""
