"""Test configuration for the whole checkout (tests/ and the doctests of maso/): hypothesis profiles and the
doctest namespace. The one place the profiles live.

Profiles:

* ``ci`` (the default) is derandomised: every run draws the same examples, so a failure reproduces and a green
  run means the same thing each time.
* ``dev`` draws new examples each run, at the tests' own counts.
* ``explore`` draws new examples at 2,000 per test (tests that set ``max_examples`` keep their count), to search
  for counterexamples.

Choose one with ``pytest --hypothesis-profile=explore`` or ``HYPOTHESIS_PROFILE=dev pytest``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow]
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, suppress_health_check=_QUIET)
settings.register_profile("dev", deadline=None, suppress_health_check=_QUIET)
settings.register_profile("explore", deadline=None, max_examples=2000, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))  # --hypothesis-profile overrides this


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import maso

    doctest_namespace["np"] = np
    doctest_namespace["maso"] = maso
