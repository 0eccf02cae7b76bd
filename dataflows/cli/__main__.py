"""`python -m dataflows.cli` is `driftline` (subprocess tests and images without the script use it)."""

import sys

from dataflows.cli.commands import main

sys.exit(main())
