import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# the fuzz suites (tests/test_hostile_*.py) scale with max_examples: a few thousand calls under
# "ci", tens of thousands under "nightly" (HYPOTHESIS_PROFILE=nightly)
settings.register_profile(
    "nightly", max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
