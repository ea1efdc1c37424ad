"""The certified floor holds at its stated level in simulated worlds with a known answer (docs/theory.md)."""

from __future__ import annotations

import math

import pytest

from rlvr_safety.theory.coverage import SMALL_KL, simulate_coverage


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    # 400 seeded trials over reference shapes, unsafe mass (0 and 0.02 give all-safe reference samples), tilts,
    # distortions and n in {12, 24, 64}; binary and graded judge scores.
    return simulate_coverage(400, alpha=0.05, seed=20261130)


def _slack(rate: float, n: int) -> float:
    return 2 * math.sqrt(rate * (1 - rate) / n)  # two Monte Carlo standard errors at the nominal rate


def test_floor_violation_rate_at_most_alpha(report) -> None:  # type: ignore[no-untyped-def]
    assert report.trials == 400
    assert report.rate <= 0.05 + _slack(0.05, report.trials)
    for cell in report.cells.values():  # no group of worlds hides a failure behind the average
        assert cell.trials == 0 or cell.violations / cell.trials <= 0.05 + 3 * math.sqrt(0.05 / cell.trials)


def test_each_confidence_limit_holds_at_its_share_of_alpha(report) -> None:  # type: ignore[no-untyped-def]
    assert report.kl_upper_misses / report.trials <= 0.025 + _slack(0.025, report.trials)
    assert report.s_lower_misses / report.trials <= 0.025 + _slack(0.025, report.trials)


def test_simulation_has_teeth(report) -> None:  # type: ignore[no-untyped-def]
    # the point-estimate floor first shipped (sample variance in chi2, point S_ref) fails far beyond alpha here
    assert report.naive_rate > 0.10


def test_floor_is_informative_where_policy_barely_moved(report) -> None:  # type: ignore[no-untyped-def]
    assert SMALL_KL <= 0.01  # well under 0.05 nats
    assert report.small_kl_trials >= 30
    assert report.power >= 0.8
