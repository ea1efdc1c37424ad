"""Which objective each run optimised, and why the forecast is (not) set beside its measured drift.

The forecast describes the optimum of E[g] - beta KL(pi || pi_ref) with the verifier's g (the exponential tilt),
which rlvr optimises with kl_mode "reward". summary.json records each run's `objective` and, where a forecast exists
but does not describe the run, `forecast_unpaired` (the reason); these notes say so in the report.
"""

from __future__ import annotations

from rlvr_safety.report.schema import ModelEntry, Summary

OBJECTIVE_LABELS = {
    "tilt": "KL in the reward (kl_mode=reward): optimum = the exponential tilt",
    "trl_k3_loss": "TRL's per-token k3 in the loss (kl_mode=loss)",
    "likelihood": "supervised likelihood (sft)",
}


def describes(model: ModelEntry) -> bool:
    """False when the summary marks the run as not described by the forecast (older summaries: True)."""
    return not model.forecast_unpaired


def forecast_drift(model: ModelEntry) -> float | None:
    """The forecast's drift set beside this run's measured drift: the study records it only where the forecast
    describes the run (same domain and beta, objective "tilt"); None otherwise."""
    return model.forecast_drift if describes(model) else None


def objective_notes(summary: Summary) -> list[str]:
    """One line per trained model whose measured drift is not paired with the forecast, saying why; empty when the
    study ran no forecast or every run is described by it."""
    if not summary.forecast:
        return []
    notes = []
    for m in summary.models:
        reason = m.forecast_unpaired
        if reason:
            objective = OBJECTIVE_LABELS.get(str(m.objective), m.objective or "unknown")
            notes.append(f"{m.id}: forecast not shown beside its drift; objective: {objective}; {reason}.")
    if notes:
        notes.insert(0, "The forecast is the drift at the optimum of E[g] - beta KL(pi||pi_ref) (the exponential "
                        "tilt), which only rlvr with kl_mode=reward optimises; other runs are not paired with it.")
    return notes
