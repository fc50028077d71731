"""``python -m runtime.services.web``: the lab's web page."""

from runtime.services.main import run
from runtime.services.web.servicer import main

run(main)
