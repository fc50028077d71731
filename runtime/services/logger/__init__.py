"""The logger service: structured log store: a ring buffer and SQLite (WAL, FTS5), queries and live subscriptions."""
