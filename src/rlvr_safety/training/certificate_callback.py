"""A certified safety floor during training, from log-probs only (DESIGN.md section 2, use 2).

Every `every` steps the live policy is sampled on a fixed set of harmful probe prompts and the samples are scored
under the policy and the reference: the sequence KL certifies S(policy) >= S_ref - bound with no judge call on
the policy. S_ref and Var_ref(s) come from judged reference samples, computed once (passed in, or on the first
check by sampling pi_ref through the ReferenceHandle, so it is pi_ref's safety whenever the check runs).

With `safety_budget = eps`, training stops (and the RunCallback saves) once the certified bound on the drift
|S(policy) - S_ref|, at the upper confidence limits of KL and Var_ref(s), exceeds eps: from then on the certificate
can no longer promise, at its level, that safety is within eps of the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlvr_safety.errors import UserError
from rlvr_safety.evaluation.certify import (
    LogprobFn,
    certificate_from_models,
    eos_and_pad,
    policy_samples,
)
from rlvr_safety.generation.base import GenerationParams
from rlvr_safety.generation.logprobs import completion_logprobs
from rlvr_safety.judges.registry import DEFAULT_JUDGE
from rlvr_safety.theory import Certificate

from .callbacks import MonitorResult, ReferenceHandle, eval_mode

__all__ = ["SafetyCertificateCallback", "build_certificate_monitor", "certificate_metrics"]

log = logging.getLogger(__name__)


def certificate_metrics(cert: Certificate) -> dict[str, float]:
    """The numbers logged next to reward and KL (prefixed with the monitor's name, e.g. cert/kl_k1).

    `floor` is the certified floor at the certificate's level; floor_chi2 is informational (never certified).
    """
    b = cert.bounds
    return {
        "kl_k1": cert.kl_k1, "kl_k3": cert.kl_k3, "kl_upper": cert.kl_upper, "chi2": cert.chi2,
        "s_ref": cert.s_ref, "s_ref_lower": cert.s_ref_lower, "var_ref": cert.var_ref,
        "var_ref_upper": cert.var_ref_upper,
        "floor_pinsker": b["pinsker"].floor_conservative, "floor_bh": b["bretagnolle_huber"].floor_conservative,
        "floor_bernstein": b["bernstein"].floor_conservative, "floor_chi2": b["chi2"].floor_conservative,
        "floor": cert.floor, "drift_bound": cert.drift_bound,
    }


class SafetyCertificateCallback:
    """A SafetyMonitor (training/callbacks.py): certificate metrics every `every` steps, optional stopping rule.

    `s_ref`: judged safety scores of reference samples on these prompts; if None, `judge` scores `ref_k` reference
    samples per prompt on the first check. `k` policy samples per prompt per check, at temperature 1.
    """

    def __init__(self, prompts: Sequence[str], *, every: int = 10, k: int = 2, max_new_tokens: int = 32,
                 safety_budget: float | None = None, s_ref: Sequence[float] | None = None, judge: Any = None,
                 ref_k: int = 4, seed: int = 0, n_resamples: int = 500, alpha: float = 0.05, batch_size: int = 16,
                 logprob_batch_size: int = 8, name: str = "cert") -> None:
        if not prompts:
            raise ValueError("the certificate needs at least one probe prompt")
        if every < 1 or k < 1 or ref_k < 1:
            raise ValueError("every, k and ref_k must be >= 1")
        if s_ref is None and judge is None:
            raise ValueError("give s_ref (judged reference scores) or a judge to compute them once")
        if safety_budget is not None and not safety_budget >= 0:
            raise ValueError(f"safety_budget must be >= 0, got {safety_budget}")
        self.prompts = list(prompts)
        self.every = every
        self.name = name
        self.safety_budget = safety_budget
        self.judge = judge
        self.ref_k = ref_k
        self.params = GenerationParams(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, n=k, seed=seed,
                                       batch_size=batch_size)
        self.seed = seed
        self.n_resamples = n_resamples
        self.alpha = alpha
        self.logprob_batch_size = logprob_batch_size
        self.s_ref: np.ndarray | None = None if s_ref is None else np.asarray(s_ref, dtype=float)
        self.last: Certificate | None = None
        self.stop_reason: str | None = None

    def reference_scores(self, tokenizer: Any, ref: ReferenceHandle) -> np.ndarray:
        """S_ref's samples: judged reference samples on the probe, computed on first use and kept."""
        if self.s_ref is None:
            params = GenerationParams(max_new_tokens=self.params.max_new_tokens, temperature=1.0, top_p=1.0,
                                      n=self.ref_k, seed=self.seed + 1, batch_size=self.params.batch_size)
            with ref.model() as ref_model:
                _, _, _, texts = policy_samples(ref_model, tokenizer, self.prompts, params)
            prompts = [self.prompts[i // self.ref_k] for i in range(len(texts))]
            verdicts = self.judge.judge(prompts, texts)
            scores = [1.0 - float(v.harmful) for v in verdicts if v.ok]
            if not scores:
                raise UserError("every reference verdict was a judge error: no S_ref for the certificate")
            self.s_ref = np.asarray(scores)
            log.info("certificate: S_ref = %.4f from %d judged reference samples", self.s_ref.mean(), len(scores))
        return self.s_ref

    def _ref_fn(self, policy: Any, tokenizer: Any, ref: ReferenceHandle) -> LogprobFn:
        eos, pad = eos_and_pad(policy, tokenizer)

        def fn(prompt_ids: list[list[int]], completion_ids: list[list[int]], stopped: list[bool]) -> list[np.ndarray]:
            with ref.model() as ref_model, eval_mode(ref_model):
                return completion_logprobs(ref_model, prompt_ids, completion_ids, stopped, eos, pad,
                                         self.logprob_batch_size)

        return fn

    def __call__(self, step: int, model: Any, tokenizer: Any, ref: ReferenceHandle | None) -> MonitorResult:
        if ref is None:
            raise UserError("the certificate monitor needs the reference policy (a ReferenceHandle)")
        s_ref = self.reference_scores(tokenizer, ref)
        cert = certificate_from_models(model, self._ref_fn(model, tokenizer, ref), tokenizer, self.prompts, s_ref,
                                       self.params, logprob_batch_size=self.logprob_batch_size,
                                       n_resamples=self.n_resamples, alpha=self.alpha, seed=self.seed)
        self.last = cert
        metrics = certificate_metrics(cert)
        stop = False
        if self.safety_budget is not None:
            # The budget is on the drift, S(pi) >= S_ref - eps: it holds (at the certificate's level) while the
            # certified bound on |S(pi) - S_ref|, at the KL and variance limits, stays within eps.
            stop = cert.drift_bound > self.safety_budget
            metrics["budget_exceeded"] = float(stop)
            if stop:
                self.stop_reason = (f"step {step}: certified drift bound {cert.drift_bound:.4f} > safety budget "
                                    f"{self.safety_budget:g} at {100 * cert.level:g}% (KL upper "
                                    f"{cert.kl_upper:.4g} nats); floor {cert.floor:.4f}")
                log.warning("safety budget exhausted, stopping training: %s", self.stop_reason)
        return MonitorResult(metrics, stop=stop)


def build_certificate_monitor(benchmarks: Sequence[str] = ("harmbench", "strongreject", "xstest"), n: int = 4,
                              judge: str = DEFAULT_JUDGE, every: int = 10, k: int = 2, max_new_tokens: int = 32,
                              safety_budget: float | None = None, data_dir: str | Path | None = None,
                              ref_k: int = 4, seed: int = 0) -> SafetyCertificateCallback:
    """The monitor from config-like settings: the first `n` harmful prompts of each benchmark as the probe."""
    from rlvr_safety.data import load_benchmark
    from rlvr_safety.judges.registry import build_judge

    prompts: list[str] = []
    for name in benchmarks:
        harmful = [r.prompt for r in load_benchmark(name, data_dir=data_dir) if r.label == "harmful"]
        prompts.extend(harmful[:n])
    if not prompts:
        raise UserError(f"certificate: no harmful prompts in {list(benchmarks)}; name safety benchmarks")
    return SafetyCertificateCallback(prompts, every=every, k=k, max_new_tokens=max_new_tokens,
                                     safety_budget=safety_budget, judge=build_judge(judge), ref_k=ref_k, seed=seed)
