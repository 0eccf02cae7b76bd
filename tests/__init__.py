"""driftline's tests, grouped by the concern they test (the subpackages of `features` and
`dataflows`); integration tests start a real local broker (see `tests/kafka_helpers.py`)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: deploy/, docs/, README.md
