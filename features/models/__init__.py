"""Online models: config, the River estimator runner, one model per segment (predict, wait for
the label, score, learn), labels and their routing, prequential metrics, feature-set inputs,
the promotion's fixed test set.

Start at `segment.SegmentModel`.
"""

from features.models.config import ModelSpec, parse_models
from features.models.runner import ModelRunner, build_model
from features.models.segment import SegmentModel
from features.models.labels import Label, LabelDecoder
from features.models.label_router import LabelRouter
from features.models.metrics import WindowScores
from features.models.feature_inputs import FeatureInputs
from features.models.fixed_test_set import FixedTestSet, load_fixed_test_set

__all__ = [
    "FeatureInputs",
    "FixedTestSet",
    "Label",
    "LabelDecoder",
    "LabelRouter",
    "ModelRunner",
    "ModelSpec",
    "SegmentModel",
    "WindowScores",
    "build_model",
    "load_fixed_test_set",
    "parse_models",
]
