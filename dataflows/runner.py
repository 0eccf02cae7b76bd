"""Running a Bytewax dataflow in this process, with the execution options the CLI exposes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.run import cli_main


@dataclass(frozen=True)
class Execution:
    """How to execute a flow: worker threads, cluster position, epochs, recovery."""

    workers: int = 1
    process_id: int | None = None
    addresses: tuple[str, ...] | None = None
    epoch_interval_s: float = 2.0


def run_flow(flow: Dataflow, execution: Execution = Execution(), recovery_dir: Path | None = None) -> None:
    """Execute `flow` until its inputs end (bounded runs) or the process is stopped.

    >>> import bytewax.operators as op
    >>> from bytewax.testing import TestingSource
    >>> from bytewax.connectors.stdio import StdOutSink
    >>> flow = Dataflow("doc")
    >>> op.output("out", op.input("in", flow, TestingSource([1, 2])), StdOutSink())
    >>> run_flow(flow)
    1
    2
    """
    recovery = None
    if recovery_dir is not None:
        from bytewax.recovery import RecoveryConfig

        recovery = RecoveryConfig(recovery_dir)
    cli_main(
        flow,
        workers_per_process=execution.workers,
        process_id=execution.process_id,
        addresses=list(execution.addresses) if execution.addresses else None,
        epoch_interval=timedelta(seconds=execution.epoch_interval_s),
        recovery_config=recovery,
    )
