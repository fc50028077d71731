"""``python -m runtime.services.logger``: the logger service process."""

import runtime.connect  # noqa: F401 - serves Connect: a fork server preloads it with this module
from runtime.services.logger.servicer import main
from runtime.services.main import run

run(main)
