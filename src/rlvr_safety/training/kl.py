"""The KL estimators and trainer-layout log-probs live in generation/logprobs.py (one module for training, the
certificate and the theory's estimators); these names stay importable from here."""

from rlvr_safety.generation.logprobs import (
    ESTIMATORS,
    per_token_estimators,
    sequence_estimators,
    sequence_kl,
)
from rlvr_safety.generation.logprobs import token_logprobs as completion_token_logprobs

__all__ = ["ESTIMATORS", "completion_token_logprobs", "per_token_estimators", "sequence_estimators", "sequence_kl"]
