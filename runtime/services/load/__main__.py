"""``python -m runtime.services.load``: the load service process."""

from runtime.services.load.servicer import main
from runtime.services.main import run

run(main)
