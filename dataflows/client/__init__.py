"""The consumer client for services: import both classes from here.

- `FeatureTable`: the latest features per entity of a `features.<set>` topic, kept up to
  date by a background thread (`dataflows.client.feature_table`).
- `OnlineStore`: the latest features per entity read from Redis, where the features flow
  keeps them when the config has an `[online_store]` (`dataflows.client.online_store`).
- `DriftSubscriber`: typed, filtered, de-duplicated drift events from `drift.events`
  (`dataflows.client.drift_subscriber`).

Both take `settings=` for Kafka security: `parse_kafka_settings(None)` reads the
`DRIFTLINE_KAFKA_*` variables, `load_config(path).kafka` a config file's `[kafka]` table.
"""

from dataflows.client.contract import SchemaVersionError
from dataflows.client.drift_subscriber import DriftEvent, DriftSubscriber, Window, parse_drift_event
from dataflows.client.feature_table import Features, FeatureTable, TableStats
from dataflows.client.online_store import OnlineStore

__all__ = ["DriftEvent", "DriftSubscriber", "FeatureTable", "Features", "OnlineStore", "SchemaVersionError",
           "TableStats", "Window", "parse_drift_event"]
