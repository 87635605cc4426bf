"""Test configuration: hypothesis profiles.

``ci`` (the default) is derandomised: every run draws the same examples, so a failure reproduces and a green
run means the same thing each time. ``pytest --hypothesis-profile=explore`` draws fresh examples to search for
new counterexamples (tests that set ``max_examples`` keep their count).
"""

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
