"""``python -m runtime.services.web``: the lab's web page."""

import runtime.connect  # noqa: F401 - serves Connect: a fork server preloads it with this module
from runtime.services.main import run
from runtime.services.web.servicer import main

run(main)
