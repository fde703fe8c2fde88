"""Entry point of ``python -m dfl.report``."""

from dfl.report.cli import main

main()
