"""``python -m runtime.services.broker``: the broker service process."""

from runtime.services.broker.servicer import main
from runtime.services.main import run

run(main)
