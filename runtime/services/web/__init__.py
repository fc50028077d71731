"""The web service: the lab's page (status board, events, logs, kill button) over Connect from the browser."""
