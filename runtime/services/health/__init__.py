"""The health service: health states: pushed reports, grpc.health.v1 probes, the supervisor's exits, the DEGRADED rule's reports."""
