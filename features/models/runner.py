"""One online estimator (with its River preprocessing): predict, learn, count what it learned.

The model is a plain River object (an estimator, or a `compose.Pipeline` of River
transformers and the estimator), so a pickled snapshot loads with River alone.

>>> from features.models.config import Preprocessing
>>> runner = ModelRunner.build("hoeffding_tree_classifier", {}, Preprocessing(), ("x",), "classification", 1)
>>> runner.predict({"x": 1.0})
({}, None)
>>> runner.learn({"x": 1.0}, True); runner.predict({"x": 1.0}), runner.learned
(({True: 1.0}, True), 1)
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from features.models import deep_pickle
from features.models.config import Preprocessing, build_estimator


def build_model(kind: str, params: Mapping[str, Any], pre: Preprocessing, inputs: Sequence[str]) -> Any:
    """The estimator, behind a River pipeline when preprocessing is configured.

    `compose.Discard` (not `Select`) routes the fields: it tolerates absent ones, and null
    inputs are absent from the vector.

    >>> from features.models.config import Preprocessing
    >>> model = build_model("hoeffding_tree_classifier", {}, Preprocessing(("a",), ("c",)), ("a", "b", "c"))
    >>> sorted(model["TransformerUnion"].transform_one({"a": 2.0, "c": "y"}))
    ['a', 'c_y']
    """
    estimator = build_estimator(kind, params)
    if not pre.scale and not pre.one_hot:
        return estimator
    from river import compose, preprocessing

    parts = []
    if pre.scale:
        parts.append(compose.Discard(*(n for n in inputs if n not in pre.scale)) | preprocessing.StandardScaler())
    if pre.one_hot:
        parts.append(compose.Discard(*(n for n in inputs if n not in pre.one_hot)) | preprocessing.OneHotEncoder())
    if set(inputs) - set(pre.scale) - set(pre.one_hot):
        parts.append(compose.Discard(*pre.scale, *pre.one_hot))
    front = compose.TransformerUnion(*parts) if len(parts) > 1 else parts[0]
    return front | estimator


class ModelRunner:
    """An estimator with an identity (`serial`, unique within its segment) and a learned count."""

    __slots__ = ("model", "kind", "classify", "serial", "learned")

    def __init__(self, model: Any, kind: str, task: str, serial: int) -> None:
        self.model = model
        self.kind = kind
        self.classify = task == "classification"
        self.serial = serial
        self.learned = 0

    @classmethod
    def build(cls, kind: str, params: Mapping[str, Any], pre: Preprocessing, inputs: Sequence[str], task: str,
              serial: int) -> ModelRunner:
        """A fresh runner."""
        return cls(build_model(kind, params, pre, inputs), kind, task, serial)

    def predict(self, x: dict[str, Any]) -> tuple[dict[Any, float] | None, Any]:
        """(class probabilities, predicted class) for a classifier; (None, value) for a regressor.

        The predicted class is River's `predict_one`: the most probable class, None before
        the model has learned anything.
        """
        if self.classify:
            proba = self.model.predict_proba_one(x)
            return proba, (max(proba, key=proba.get) if proba else None)
        return None, self.model.predict_one(x)

    def learn(self, x: dict[str, Any], y: Any) -> None:
        """Learn one labelled example."""
        self.model.learn_one(x, y)
        self.learned += 1

    def __getstate__(self) -> tuple[Any, ...]:
        """The estimator as pickle bytes made by `deep_pickle.dumps`: Bytewax recovery pickles
        the model flow's state, and a River model can be deeper than the recursion limit."""
        return deep_pickle.dumps(self.model), self.kind, self.classify, self.serial, self.learned

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        model, self.kind, self.classify, self.serial, self.learned = state
        self.model = pickle.loads(model)


def input_vector(fields: Mapping[str, Any], inputs: Sequence[str]) -> dict[str, Any]:
    """The model's input vector from an event's fields: the inputs, nulls left out.

    >>> input_vector({"price": 9.5, "surge": None, "area": "a"}, ("price", "surge"))
    {'price': 9.5}
    """
    return {name: fields[name] for name in inputs if fields.get(name) is not None}
