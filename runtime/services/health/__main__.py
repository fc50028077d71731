"""``python -m runtime.services.health``: the health service process."""

import runtime.connect  # noqa: F401 - serves Connect: a fork server preloads it with this module
from runtime.services.health.servicer import main
from runtime.services.main import run

run(main)
