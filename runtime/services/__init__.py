"""The lab's runtime services, one process each: `python -m runtime.services.<name>`."""
