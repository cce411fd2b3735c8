"""``python -m reconciler.qa``: the QA runner's command line."""

import sys

from .cli import main

sys.exit(main())
