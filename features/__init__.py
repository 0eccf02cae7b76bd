"""driftline feature library: pure Python, no Kafka or Bytewax imports."""
