"""``python -m runtime.services.health``: the health service process."""

from runtime.services.health.servicer import main
from runtime.services.main import run

run(main)
