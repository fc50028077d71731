"""``python -m runtime.services.config``: the config service process."""

from runtime.services.config.servicer import main
from runtime.services.main import run

run(main)
