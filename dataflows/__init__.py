"""driftline dataflows: Bytewax flows, Kafka I/O, the local broker and the CLI."""
