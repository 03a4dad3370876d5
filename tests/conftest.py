"""Hypothesis profiles: "ci" (the default) is derandomized, so every run draws the same examples;
"nightly" (HYPOTHESIS_PROFILE=nightly) draws new ones, ten times as many; "dev" is a quick
local pass. A failure a random run finds is fixed and pinned with ``@example``."""

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile(
    "ci", max_examples=200, derandomize=True, database=None, print_blob=True, **_COMMON
)
settings.register_profile("dev", max_examples=60, **_COMMON)
# the fuzz suites (tests/test_hostile_*.py) scale with max_examples: a few thousand calls under
# "ci", tens of thousands under "nightly"
settings.register_profile("nightly", max_examples=2000, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
