"""Pure-numpy theory of safety under KL-regularised RLVR: tilting, bounds, estimators, forecast, certificate.

Never imports torch: callers pass arrays of probabilities, scores and log-probs.
"""

from rlvr_safety.theory.certificate import BoundCheck, BoundResult, Certificate, certify, check_measured
from rlvr_safety.theory.estimators import (
    KLEstimate,
    bootstrap_ci,
    chi2_estimate,
    forecast_safety,
    sequence_kl,
    sequence_log_ratios,
    token_log_ratios,
)
from rlvr_safety.theory.forecast import Forecast, forecast
from rlvr_safety.theory.tilting import (
    bernstein_bound,
    binary_drift,
    binary_tilt,
    bounds,
    bretagnolle_huber_bound,
    chi2,
    chi2_bound,
    delta_success,
    drift,
    kl,
    log_partition,
    optimum_bound,
    pinsker_bound,
    tilt,
    tv,
)

__all__ = [
    "BoundCheck",
    "BoundResult",
    "Certificate",
    "Forecast",
    "KLEstimate",
    "bernstein_bound",
    "binary_drift",
    "binary_tilt",
    "bootstrap_ci",
    "bounds",
    "bretagnolle_huber_bound",
    "certify",
    "check_measured",
    "chi2",
    "chi2_bound",
    "chi2_estimate",
    "delta_success",
    "drift",
    "forecast",
    "forecast_safety",
    "kl",
    "log_partition",
    "optimum_bound",
    "pinsker_bound",
    "sequence_kl",
    "sequence_log_ratios",
    "tilt",
    "token_log_ratios",
    "tv",
]
