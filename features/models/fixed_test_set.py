"""The promotion's sanity check on a fixed test set: labelled events from a JSONL file.

A challenger that beats the champion on the most recent labels must also not be worse than
the champion by more than `promotion.test_margin` on a static set of labelled events
(`promotion.test_set`): recent data says whether it learned the new regime, the fixed set
whether it forgot what should still hold.

Each line is an event as on the events topic (the schema's fields and event time) with the
label under `labels.field`, decoded by the flows' own batch decoder; the input vector is
built as the flow builds it (`input_vector`: the inputs in config order, nulls left out). A
file has no stream to compute feature-set windows from, so a model with feature inputs needs
every line to carry them under their names (`"area_1m.rides": 3`, null when unknown): the
values the model would have read at the event's time, as `driftline training-set` writes
them. A segmented model's segment is scored on the lines of its segment only. Blank lines
are skipped; anything else that is not a valid labelled event stops the flow at start.

>>> import tempfile
>>> from features.models.config import ChallengerSpec, LabelSpec, ModelSpec, PromotionTestSet
>>> from features.schema import parse_schema
>>> schema = parse_schema({"entity": "area", "event_time": "ts", "fields": {"area": "string", "x": "float"}})
>>> path = Path(tempfile.mkdtemp()) / "test.jsonl"
>>> _ = path.write_text('{"area": "a", "ts": 1767225600000, "x": 1.0, "y": true}\\n'
...                    '{"area": "b", "ts": 1767225600000, "x": 5.0, "y": false}\\n')
>>> spec = ModelSpec("m", "hoeffding_tree_classifier", "classification", ("x",), LabelSpec("l", "area", "y"),
...                  challenger=ChallengerSpec("hoeffding_tree_classifier"), promotion_test=PromotionTestSet(path))
>>> test_set = load_fixed_test_set(spec, schema, "models[0].promotion.test_set")
>>> test_set.examples(None)
(({'x': 1.0}, True), ({'x': 5.0}, False))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.config_values import ConfigError
from features.event_batch import BatchDecoder
from features.events import DecodeLimits, EventDecoder
from features.models.config import ModelSpec
from features.models.metrics import score
from features.models.runner import ModelRunner, input_vector
from features.schema import EventSchema

Example = tuple[dict[str, Any], Any]  # (input vector, label)

# A test set's event times say nothing about the evaluation: none is refused as in the future.
_NO_FUTURE_BOUND = 2**62


@dataclass(frozen=True)
class FixedSetScores:
    """Champion and challenger on a segment's examples of the test set (its file's path), in the
    model's metric (accuracy, or MAE; None without examples), and whether the challenger passes."""

    path: str
    examples: int
    champion: float | None
    challenger: float | None
    margin: float
    passed: bool


@dataclass(frozen=True)
class FixedTestSet:
    """A model's decoded test set, read once when the flow starts: examples by segment."""

    path: Path
    margin: float
    classify: bool
    by_segment: dict[str | None, tuple[Example, ...]] = field(hash=False)

    def examples(self, segment: str | None) -> tuple[Example, ...]:
        """The examples a segment's models are scored on (every example for an unsegmented model)."""
        return self.by_segment.get(segment, ())

    def compare(self, champion: ModelRunner, challenger: ModelRunner, segment: str | None) -> FixedSetScores:
        """Score both models on the segment's examples; the challenger passes when it is not worse
        by more than the margin. A segment without examples passes (the set has nothing to say).

        >>> from features.models.config import Preprocessing
        >>> def runner(y): r = ModelRunner.build("hoeffding_tree_classifier", {}, Preprocessing(), ("x",),
        ...                                      "classification", 1); r.learn({"x": 1.0}, y); return r
        >>> test_set = FixedTestSet(Path("t.jsonl"), 0.0, True, {None: (({"x": 1.0}, True),)})
        >>> test_set.compare(runner(True), runner(False), None)
        FixedSetScores(path='t.jsonl', examples=1, champion=1.0, challenger=0.0, margin=0.0, passed=False)
        """
        examples = self.examples(segment)
        if not examples:
            return FixedSetScores(str(self.path), 0, None, None, self.margin, True)
        champion_score = mean_score(champion, examples, self.classify)
        challenger_score = mean_score(challenger, examples, self.classify)
        passed = not_worse_by_more_than(challenger_score, champion_score, self.margin)
        sign = 1.0 if self.classify else -1.0  # scores are higher-is-better: minus the MAE
        return FixedSetScores(str(self.path), len(examples), sign * champion_score, sign * challenger_score,
                              self.margin, passed)


def mean_score(runner: ModelRunner, examples: Sequence[Example], classify: bool) -> float:
    """The mean `score` of a model's predictions on the examples (it learns nothing from them)."""
    return sum(score(classify, runner.predict(x)[1], y) for x, y in examples) / len(examples)


def not_worse_by_more_than(challenger: float, champion: float, margin: float) -> bool:
    """Whether a higher-is-better score is at most `margin` below the champion's; a difference
    equal to the margin up to rounding passes (0.89 is not worse than 0.90 by more than 0.01).

    >>> not_worse_by_more_than(0.89, 0.90, 0.01), not_worse_by_more_than(0.88, 0.90, 0.01)
    (True, False)
    """
    return challenger - champion >= -margin - 1e-12 * max(1.0, abs(champion), abs(challenger))


def load_fixed_test_set(spec: ModelSpec, schema: EventSchema, key: str,
                        max_event_bytes: int = DecodeLimits().max_event_bytes) -> FixedTestSet:
    """Read and decode `spec.promotion_test`'s file; a `ConfigError` naming `key`, the line and
    the fix when it is missing, empty, or has a line that is not a labelled event of the schema."""
    test = spec.promotion_test
    assert test is not None
    path = test.path
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, "a readable JSONL file of labelled events", str(path),
                          f"check the path ({exc.strerror}); a relative path is read from the config file's "
                          "directory.") from None
    numbered = [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    if not numbered:
        raise ConfigError(key, "a JSONL file with at least one labelled event", str(path),
                          f"write one event per line with its label under {spec.labels.field!r}.")
    decoder = BatchDecoder(EventDecoder(schema, DecodeLimits(max_event_bytes, _NO_FUTURE_BOUND)))
    lines = [line for _n, line in numbered]
    batch, rejected = decoder.decode(lines, 0, [0] * len(lines), list(range(len(lines))))
    if rejected:
        position, rejection = rejected[0]
        raise ConfigError(key, "events valid against [schema]", f"{path} line {numbered[position][0]}: "
                          f"{rejection.reason.value}: {rejection.detail}",
                          "correct or remove the line; each line is an event as on the events topic plus its label.")
    classify = spec.task == "classification"
    feature_inputs = tuple((f.name, f.numeric) for f in spec.features)
    by_segment: dict[str | None, list[Example]] = {}
    for event in batch.events():
        fields, line = event.fields, numbered[event.offset][0]
        y = _label(fields, spec, classify, key, f"{path} line {line}")
        for name, numeric in feature_inputs:
            value = fields.get(name, ...)
            if value is ...:
                raise ConfigError(key, f"every line with the model's feature input {name!r}", f"{path} line {line}",
                                  f'add "{name}": the value the model would have read at the event\'s time '
                                  "(null when unknown), e.g. from `driftline training-set`.")
            if value is not None and numeric and (type(value) not in (int, float) or not math.isfinite(value)):
                raise ConfigError(key, f"a finite number or null in feature input {name!r}", f"{path} line {line}: "
                                  f"{value!r}", "write the feature's number, or null when it is unknown.")
        segment = str(fields[spec.segment_by]) if spec.segment_by else None
        by_segment.setdefault(segment, []).append((input_vector(fields, spec.inputs), y))
    return FixedTestSet(path, test.margin, classify, {s: tuple(examples) for s, examples in by_segment.items()})


def _label(fields: dict[str, Any], spec: ModelSpec, classify: bool, key: str, where: str) -> Any:
    """A line's label, checked as the labels topic's are, and numeric for a regressor's MAE."""
    name = spec.labels.field
    y = fields.get(name)
    if y is None:
        raise ConfigError(key, f"each line with its label in {name!r} (labels.field)", where,
                          f'add the label, e.g. "{name}": {"true" if classify else "12.5"}.')
    if isinstance(y, (dict, list)) or (isinstance(y, float) and not math.isfinite(y)):
        raise ConfigError(key, f"a label value in {name!r}", f"{where}: {y!r}", "write a class or a number.")
    if not classify and (isinstance(y, bool) or not isinstance(y, (int, float))):
        raise ConfigError(key, f"a number in {name!r}: the regressor is scored by MAE", f"{where}: {y!r}",
                          "a regressor's test set needs numeric labels; check labels.field and the file.")
    return float(y) if not classify else y
