"""The output topics' JSON Schemas (deploy/schemas/) as validators, each built and checked
against the metaschema once per test run: checking it for every message cost the schema test
most of its minute."""

from __future__ import annotations

import functools
import json

from jsonschema import Draft202012Validator

from tests import ROOT

# Each message's `schema` field -> its schema file.
SCHEMA_FILES = {
    "driftline.dead_letter/1": "dead_letter.json",
    "driftline.features/1": "features.json",
    "driftline.late_event/1": "late_event.json",
    "driftline.sample/1": "sample.json",
    "driftline.drift_event/1": "drift_event.json",
    "driftline.window_summary/1": "window_summary.json",
    "driftline.prediction/1": "prediction.json",
    "driftline.model_metrics/1": "model_metrics.json",
    "driftline.model_promotion/1": "model_promotion.json",
    "driftline.model_promotion_refused/1": "model_promotion_refused.json",
    "driftline.model_snapshot/1": "model_snapshot.json",
}


@functools.cache
def schema_validator(file_name: str) -> Draft202012Validator:
    """The validator of `deploy/schemas/<file_name>`; the schema itself is checked first."""
    schema = json.loads((ROOT / "deploy" / "schemas" / file_name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_message(message: dict) -> None:
    """Validate an output message against the schema its `schema` field names."""
    schema_validator(SCHEMA_FILES[message["schema"]]).validate(message)
