"""The config service: live configuration in SQLite with versions, history and watches."""
