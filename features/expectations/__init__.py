"""Data expectations ("unit tests for data"): ranges, allowed sets, not-null, types, regexes,
comparisons of two fields, evaluated on window summaries where possible, else value by value.
"""

from features.expectations.config import Expectation, parse_expectation, parse_expectations
from features.expectations.column_checks import (
    InSet,
    NotNull,
    NumericType,
    ValueRange,
    evaluate,
    evaluate_all,
)
from features.expectations.value_checks import HasType, Matches, ValueCheck
from features.expectations.pair_checks import Compare
from features.expectations.results import ExpectationResult, result_from_bounds
from features.expectations.window_checks import WindowChecks
from features.expectations.suggest import suggest_lines, suggest_toml

__all__ = [
    "Compare",
    "Expectation",
    "ExpectationResult",
    "HasType",
    "InSet",
    "Matches",
    "NotNull",
    "NumericType",
    "ValueCheck",
    "ValueRange",
    "WindowChecks",
    "evaluate",
    "evaluate_all",
    "parse_expectation",
    "parse_expectations",
    "result_from_bounds",
    "suggest_lines",
    "suggest_toml",
]
