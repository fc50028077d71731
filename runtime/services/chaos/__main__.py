"""``python -m runtime.services.chaos``: the chaos service process."""

from runtime.services.chaos.servicer import main
from runtime.services.main import run

run(main)
