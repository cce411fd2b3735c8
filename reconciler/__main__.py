"""``python -m reconciler`` runs the command line."""

from .cli import main

main()
