"""The `driftline` command line: its commands (run, replay, demo, produce, tail, report,
reference, expectations, samples, model export), progress lines and logs.
"""

from dataflows.cli.commands import main

__all__ = ["main"]
