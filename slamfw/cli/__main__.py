"""``python -m slamfw.cli``: the command line."""
from . import run

run()
