"""Promotion with a sanity check on a fixed test set: config, decoding, the margin's algebra,
refusals in `SegmentModel`, and the messages against their JSON Schemas."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.config import parse_config
from features.config_values import ConfigError
from features.models.config import ChallengerSpec, LabelSpec, ModelSpec, PromotionTestSet
from features.models.fixed_test_set import FixedTestSet, load_fixed_test_set, not_worse_by_more_than
from features.models.messages import promotion_message, promotion_refused_message
from features.models.runner import input_vector
from features.models.segment import Promotion, PromotionRefused, SegmentModel
from tests.schemas import schema_validator

T0 = 1_767_225_600_000
KEY = "models[0].promotion.test_set"
SCHEMA = {"entity": "area", "event_time": "ts",
          "fields": {"ride_id": "string", "area": "string", "price": "float",
                     "surge": {"type": "float", "nullable": True}}}
FEATURE_SETS = [{"name": "a1m", "window": {"type": "tumbling", "length": "1m"},
                 "features": [{"name": "rides", "agg": "count"}]}]


def document(tmp_path: Path, promotion: dict, **model: object) -> dict:
    entry = {"name": "cancel", "kind": "hoeffding_tree_classifier", "inputs": ["price", "surge"],
             "labels": {"key": "ride_id", "field": "cancelled"}, "challenger": {"start": "always"},
             "promotion": promotion, **model}
    return {"source": {"topic": "rides"}, "schema": SCHEMA, "feature_sets": FEATURE_SETS, "models": [entry]}


def line(i: int, **changes: object) -> dict:
    return {"ride_id": f"r{i}", "area": f"a{i % 2}", "ts": T0 + i, "price": float(i), "surge": None,
            "cancelled": i % 3 == 0, **changes}


def write(path: Path, lines: list[dict | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines))
    return path


def load(tmp_path: Path, lines: list[dict | bytes], **model: object) -> FixedTestSet:
    write(tmp_path / "test.jsonl", lines)
    config = parse_config(document(tmp_path, {"test_set": "test.jsonl", "test_margin": 0.01}, **model),
                          tmp_path / "config.toml")
    return load_fixed_test_set(config.models[0], config.schema, KEY)


# --- config and decoding --------------------------------------------------------------------------


def test_keys_path_relative_to_the_config_and_the_flows_input_vector(tmp_path: Path) -> None:
    lines = [line(i) for i in range(6)] + [line(6, surge=1.5)]
    test_set = load(tmp_path, [*lines[:3], b"", b"  ", *lines[3:]])  # blank lines are skipped
    assert test_set.path == tmp_path / "test.jsonl" and test_set.margin == 0.01 and test_set.classify
    assert test_set.examples(None) == tuple((input_vector(x, ("price", "surge")), x["cancelled"]) for x in lines)
    assert test_set.examples(None)[-1] == ({"price": 6.0, "surge": 1.5}, True)  # nulls left out, as live
    spec = parse_config(document(tmp_path, {"test_set": "/abs/t.jsonl"})).models[0]
    assert spec.promotion_test == PromotionTestSet(Path("/abs/t.jsonl"), 0.0)  # default margin: not worse
    assert parse_config(document(tmp_path, {"window": 10})).models[0].promotion_test is None


def test_segments_feature_inputs_and_regression_labels(tmp_path: Path) -> None:
    lines = [line(i, **{"a1m.rides": i if i else None}) for i in range(4)]
    test_set = load(tmp_path, lines, inputs=["price", "a1m.rides"], segment_by="area")
    assert test_set.examples("a0") == (({"price": 0.0}, True), ({"price": 2.0, "a1m.rides": 2}, False))
    assert test_set.examples("a1") == (({"price": 1.0, "a1m.rides": 1}, False), ({"price": 3.0, "a1m.rides": 3}, True))
    assert test_set.examples("a9") == ()
    regression = load(tmp_path, [line(0, cancelled=4), line(1, cancelled=2.5)], kind="hoeffding_tree_regressor")
    assert regression.examples(None) == (({"price": 0.0}, 4.0), ({"price": 1.0}, 2.5)) and not regression.classify


@pytest.mark.parametrize("promotion, model, key, words", [
    ({"test_set": "t.jsonl"}, {"challenger": None}, KEY, "add challenger"),
    ({"test_margin": 0.01}, {}, "models[0].promotion.test_margin", "name the test set too"),
    ({"test_set": "t.jsonl", "test_margin": 1.5}, {}, "models[0].promotion.test_margin", "[0.0, 1.0]"),
    ({"test_set": "t.jsonl", "test_margin": -0.1}, {}, "models[0].promotion.test_margin", "choose a value"),
    ({"test_set": ""}, {}, KEY, "non-empty"),
    ({"test_sett": "t.jsonl"}, {}, "models[0].promotion.test_sett", "correct its spelling"),
])
def test_bad_keys_name_the_key_and_the_fix(tmp_path: Path, promotion: dict, model: dict, key: str,
                                          words: str) -> None:
    doc = document(tmp_path, promotion, **model)
    if model.get("challenger", ...) is None:
        del doc["models"][0]["challenger"]
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    assert caught.value.key == key and words in str(caught.value)


def test_a_regressor_margin_is_in_label_units(tmp_path: Path) -> None:
    doc = document(tmp_path, {"test_set": "t.jsonl", "test_margin": 2.5}, kind="hoeffding_tree_regressor")
    assert parse_config(doc).models[0].promotion_test.margin == 2.5


@pytest.mark.parametrize("lines, model, words", [
    (None, {}, "No such file or directory"),
    ([], {}, "at least one labelled event"),
    ([b"", b" "], {}, "at least one labelled event"),
    ([line(0), line(1), b"{not json"], {}, "line 3: not_json"),
    ([line(0), line(1, price="cheap")], {}, "line 2: wrong_type: field 'price'"),
    ([line(0), {k: v for k, v in line(1).items() if k != "ts"}], {}, "line 2: missing_field"),
    ([line(0), line(1, cancelled=None)], {}, "line 2"),
    ([line(0, cancelled=[1])], {}, "line 1: [1]"),
    ([line(0, cancelled=True)], {"kind": "hoeffding_tree_regressor"}, "scored by MAE"),
    ([line(0, cancelled="yes")], {"kind": "hoeffding_tree_regressor"}, "numeric labels"),
    ([line(0, **{"a1m.rides": 1}), line(1)], {"inputs": ["price", "a1m.rides"]}, "line 2"),
    ([line(0, **{"a1m.rides": "many"})], {"inputs": ["price", "a1m.rides"]}, "a finite number or null"),
])
def test_bad_files_stop_at_start_naming_the_key_the_line_and_the_fix(tmp_path: Path, lines: list | None,
                                                                      model: dict, words: str) -> None:
    config = parse_config(document(tmp_path, {"test_set": str(tmp_path / "test.jsonl")}, **model))
    if lines is not None:
        write(tmp_path / "test.jsonl", lines)
    with pytest.raises(ConfigError) as caught:
        load_fixed_test_set(config.models[0], config.schema, KEY)
    assert caught.value.key == KEY and words in str(caught.value) and "Fix:" in str(caught.value)


def test_a_missing_feature_input_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"add \"a1m.rides\".*driftline training-set"):
        load(tmp_path, [line(0)], inputs=["price", "a1m.rides"])


# --- the margin -----------------------------------------------------------------------------------


@given(st.integers(1, 10_000), st.data())
def test_the_margin_is_exact_on_accuracies(n: int, data: st.DataObject) -> None:
    """Accuracies k/n and a margin m/n: the float comparison says what the integers say,
    including at the boundary (rounding does not refuse a challenger exactly `margin` worse)."""
    champion, challenger, m = (data.draw(st.integers(0, n)) for _ in range(3))
    assert not_worse_by_more_than(challenger / n, champion / n, m / n) == (challenger - champion >= -m)


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0, 1e3), st.floats(0, 1e3))
def test_the_margin_is_monotone(champion: float, challenger: float, margin: float, more: float) -> None:
    passed = not_worse_by_more_than(challenger, champion, margin)
    assert not_worse_by_more_than(champion, champion, margin)  # as good as the champion: always
    if passed:  # a better challenger, or a larger margin, still passes
        assert not_worse_by_more_than(challenger + more, champion, margin)
        assert not_worse_by_more_than(challenger, champion, margin + more)
    if challenger < champion - margin - 1e-6 * max(1.0, abs(champion)):
        assert not passed


class Constant:
    """A model that predicts one value (what `compare` reads of a runner)."""

    def __init__(self, value: object) -> None:
        self.value = value

    def predict(self, x: dict) -> tuple[None, object]:
        return None, self.value


@given(st.lists(st.floats(-100, 100), min_size=1, max_size=30), st.floats(-100, 100), st.floats(-100, 100),
       st.floats(0, 10))
def test_regressors_are_compared_by_mae(labels: list[float], champion: float, challenger: float,
                                        margin: float) -> None:
    test_set = FixedTestSet(Path("t.jsonl"), margin, False, {None: tuple(({}, y) for y in labels)})
    scores = test_set.compare(Constant(champion), Constant(challenger), None)  # type: ignore[arg-type]
    mae = [sum(abs(v - y) for y in labels) / len(labels) for v in (champion, challenger)]
    assert scores.champion == pytest.approx(mae[0]) and scores.challenger == pytest.approx(mae[1])
    assert scores.examples == len(labels) and scores.margin == margin
    if abs(mae[1] - mae[0] - margin) > 1e-9 * max(1.0, *mae):  # away from the boundary
        assert scores.passed == (mae[1] <= mae[0] + margin)


def test_a_segment_without_examples_passes_with_null_scores() -> None:
    test_set = FixedTestSet(Path("t.jsonl"), 0.0, True, {"a": (({}, True),)})
    scores = test_set.compare(Constant(True), Constant(False), "b")  # type: ignore[arg-type]
    assert (scores.examples, scores.champion, scores.challenger, scores.passed) == (0, None, None, True)


# --- promotion in SegmentModel --------------------------------------------------------------------


def spec(window: int = 200) -> ModelSpec:
    return ModelSpec("m", "river.dummy.NoChangeClassifier", "classification", ("x",),
                     LabelSpec("labels", "k", "y", ttl_ms=10_000), metrics_window_ms=1_000, snapshot_every_ms=5_000,
                     challenger=ChallengerSpec("hoeffding_tree_classifier", {"grace_period": 50}, "always"),
                     promotion_window=window, promotion_margin=0.1)


def concept_set(concept: bool, margin: float = 0.05, n: int = 200, segment: str | None = None) -> FixedTestSet:
    """Examples of y = (x > 0) == concept: the stream's concept (True) or its opposite."""
    rng = random.Random(7)
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return FixedTestSet(Path("t.jsonl"), margin, True, {segment: tuple(({"x": x}, (x > 0) == concept) for x in xs)})


def stream(seg: SegmentModel, start: int, stop: int) -> list[object]:
    """y = x > 0, each label 1 ms after its event (the challenger learns it, the champion cannot)."""
    rng = random.Random(0)
    xs = [rng.uniform(-1, 1) for _ in range(stop)]
    out: list[object] = []
    for i in range(start, stop):
        out += seg.on_event(str(i), i * 10, {"x": xs[i]})
        out += seg.on_label(str(i), i * 10 + 1, xs[i] > 0)
    return out


def test_a_challenger_that_passes_the_test_set_is_promoted_with_both_scores() -> None:
    seg = SegmentModel(spec(), None, concept_set(True))
    promotions = [o for o in stream(seg, 0, 1500) if isinstance(o, (Promotion, PromotionRefused))]
    assert len(promotions) == 1 and isinstance(promotions[0], Promotion) and seg.version == 2
    p = promotions[0]
    assert p.challenger_score - p.champion_score > 0.1  # the recent labels
    assert p.test_set is not None and p.test_set.passed and p.test_set.examples == 200
    assert p.test_set.challenger > 0.9 > p.test_set.champion  # and the fixed set


def test_a_challenger_worse_on_the_test_set_is_refused_then_tried_again_each_window() -> None:
    seg = SegmentModel(spec(window=200), None, concept_set(False))
    out = stream(seg, 0, 1500)
    refused = [o for o in out if isinstance(o, PromotionRefused)]
    assert not [o for o in out if isinstance(o, Promotion)] and seg.version == 1
    assert len(refused) >= 3 and all(r.test_set.challenger < r.test_set.champion - 0.05 for r in refused)
    assert all(r.challenger_score - r.champion_score > 0.1 for r in refused)  # it won on the recent labels
    assert [b.labelled - a.labelled for a, b in zip(refused, refused[1:])] == [200] * (len(refused) - 1)
    assert seg.retest_at == refused[-1].labelled + 200


def test_without_a_test_set_the_same_challenger_is_promoted() -> None:
    seg = SegmentModel(spec(), None)
    out = stream(seg, 0, 1500)
    assert [type(o) for o in out if isinstance(o, (Promotion, PromotionRefused))] == [Promotion]
    assert next(o for o in out if isinstance(o, Promotion)).test_set is None


def test_recovery_drops_the_test_set_from_the_state_and_resumes_identically() -> None:
    test_set = concept_set(False)
    whole = SegmentModel(spec(), None, test_set)
    expected = stream(whole, 0, 1500)
    first = SegmentModel(spec(), None, test_set)
    out = stream(first, 0, 700)
    state = pickle.dumps(first)
    assert b"t.jsonl" not in state  # the test set is not copied into every snapshot
    resumed = pickle.loads(state)
    assert resumed.test_set is None and resumed.retest_at == first.retest_at > 0
    resumed.test_set = test_set  # as the flow does on resume
    out += stream(resumed, 700, 1500)
    assert [o for o in out if isinstance(o, PromotionRefused)]  # the resumed run refuses as the whole one does
    assert out == expected


def test_state_pickled_before_the_check_resumes() -> None:
    seg = SegmentModel(spec(), None)
    state = seg.__getstate__()
    del state["retest_at"]
    old = SegmentModel.__new__(SegmentModel)
    old.__setstate__(state)
    assert old.retest_at == 0 and old.test_set is None


# --- messages -------------------------------------------------------------------------------------


def test_messages_carry_both_scores_and_match_their_schemas() -> None:
    seg = SegmentModel(spec(), "area-1", concept_set(False, segment="area-1"))
    refused = next(o for o in stream(seg, 0, 1500) if isinstance(o, PromotionRefused))
    msg = promotion_refused_message("m", "area-1", refused, T0)
    schema_validator("model_promotion_refused.json").validate(msg)
    assert msg["id"] == f"m@area-1/promotion/2/refused/{refused.labelled}" and msg["version"] == 1
    assert (msg["champion"], msg["challenger"]) == (refused.champion_score, refused.challenger_score)
    assert msg["test_set"] == {"path": "t.jsonl", "examples": 200, "champion": refused.test_set.champion,
                               "challenger": refused.test_set.challenger, "margin": 0.05, "passed": False}
    seg = SegmentModel(spec(), None, concept_set(True))
    promoted = next(o for o in stream(seg, 0, 1500) if isinstance(o, Promotion))
    msg = promotion_message("m", None, promoted, T0)
    schema_validator("model_promotion.json").validate(msg)
    assert msg["test_set"]["passed"] and msg["test_set"]["challenger"] == promoted.test_set.challenger
    plain = promotion_message("m", None, replace(promoted, test_set=None), T0)
    schema_validator("model_promotion.json").validate(plain)
    assert "test_set" not in plain  # without a test set the message is as before
