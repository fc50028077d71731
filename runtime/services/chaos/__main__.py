"""``python -m runtime.services.chaos``: the chaos service process."""

import runtime.connect  # noqa: F401 - serves Connect: a fork server preloads it with this module
from runtime.services.chaos.servicer import main
from runtime.services.main import run

run(main)
