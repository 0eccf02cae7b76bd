"""The output topics' JSON Schemas (deploy/schemas/) as validators, each built and checked
against the metaschema once per test run: checking it for every message cost the schema test
most of its minute."""

from __future__ import annotations

import functools
import json

from jsonschema import Draft202012Validator

from tests import ROOT


def schema_file(schema: str) -> str:
    """The schema file of a message's `schema` field: "driftline.model_metrics/1" -> "model_metrics.json"."""
    return schema.removeprefix("driftline.").split("/")[0] + ".json"


@functools.cache
def schema_validator(file_name: str) -> Draft202012Validator:
    """The validator of `deploy/schemas/<file_name>`; the schema itself is checked first."""
    schema = json.loads((ROOT / "deploy" / "schemas" / file_name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_message(message: dict) -> None:
    """Validate an output message against the schema its `schema` field names."""
    schema_validator(schema_file(message["schema"])).validate(message)
