"""Two-sample drift tests from summaries (KS, PSI, Jensen-Shannon, Wasserstein, chi-squared, MMD),
the alert policy that turns results into alerts, and root-cause localisation.

The statistics only: `features.monitors` runs them on a stream's windows.
"""

from features.drift.result import TestResult
from features.drift.alert_policy import Alert, AlertPolicy, PolicyState, benjamini_hochberg
from features.drift.mmd import mmd_test
from features.drift.root_cause import localise

__all__ = [
    "Alert",
    "AlertPolicy",
    "PolicyState",
    "TestResult",
    "benjamini_hochberg",
    "localise",
    "mmd_test",
]
