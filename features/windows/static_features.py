"""Per-entity batch features from a CSV or JSONL file, joined onto streaming features.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "areas.csv"
>>> _ = path.write_text("area,zone,base_fare\\narea-001,north,2.5\\n")
>>> load_static(path, "area")
{'area-001': {'zone': 'north', 'base_fare': 2.5}}
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson


def _number_or_text(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text if text != "" else None


def load_static(path: Path, key: str) -> dict[str, dict[str, Any]]:
    """Rows of a .csv (numbers parsed) or .jsonl file, by the string value of their `key` column.

    Raises ValueError naming the file, the line and the fix when the file cannot be used.
    """
    if not path.is_file():
        raise ValueError(f"static feature file {path} does not exist; fix the `static.path` key")
    rows: dict[str, dict[str, Any]] = {}
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or key not in reader.fieldnames:
                raise ValueError(f"{path}: no column {key!r} (columns: {reader.fieldnames}); fix `static.key`")
            for record in reader:
                entity = record.pop(key)
                rows[entity] = {k: _number_or_text(v) for k, v in record.items()}
        return rows
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict) or key not in record:
                raise ValueError(f"{path}:{number}: expected an object with {key!r}")
            entity = str(record.pop(key))
            rows[entity] = record
        return rows
    raise ValueError(f"static feature file {path}: expected a .csv or .jsonl file")
