"""The broker service: registry and discovery: Register with leases, LookupService, WatchServices."""
