"""``python -m service`` runs the groundqa CLI."""

from service.cli import main

main()
