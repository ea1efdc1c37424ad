"""Capability tasks and safety benchmarks as normalised `Record`s: registry, loaders, attack transforms."""

from rlvr_safety.data.attacks import ATTACKS, apply_attack, attack_prompt, decode_attack, list_attacks
from rlvr_safety.data.records import Label, Record
from rlvr_safety.data.registry import (
    REGISTRY,
    SUITES,
    BenchmarkInfo,
    expand,
    list_benchmarks,
    load_benchmark,
    take,
)

__all__ = [
    "ATTACKS",
    "REGISTRY",
    "SUITES",
    "BenchmarkInfo",
    "Label",
    "Record",
    "apply_attack",
    "attack_prompt",
    "decode_attack",
    "expand",
    "list_attacks",
    "list_benchmarks",
    "load_benchmark",
    "take",
]
