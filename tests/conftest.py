"""Shared fixtures: one real local broker (Tansu) per test session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from dataflows.kafka.broker import RunningBroker, local_broker

# The machines running the suite are shared and noisy: no per-example deadlines, no
# "too slow" health checks. Property tests assert algebra, never timing.
settings.register_profile("driftline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("driftline")

_topic_numbers = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[RunningBroker]:
    """A Tansu broker process on a free loopback port, stopped after the session."""
    with local_broker() as running:
        yield running


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A topic name prefix unique to this test, so tests sharing the broker never collide."""
    return f"t{next(_topic_numbers)}-{request.node.name[:40].replace('[', '-').replace(']', '')}"
