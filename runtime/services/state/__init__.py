"""The state service: coordination state: values with versions, compare-and-swap, locks with fencing tokens."""
