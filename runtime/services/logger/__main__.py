"""``python -m runtime.services.logger``: the logger service process."""

from runtime.services.logger.servicer import main
from runtime.services.main import run

run(main)
