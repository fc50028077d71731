"""``python -m runtime.services.state``: the state service process."""

from runtime.services.main import run
from runtime.services.state.servicer import main

run(main)
