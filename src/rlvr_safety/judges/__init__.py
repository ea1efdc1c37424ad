"""Refusal/harm judges behind one interface; `get_judge(name)` builds one, `list_judges()` names them."""

from rlvr_safety.judges.base import Judge, Verdict
from rlvr_safety.judges.registry import (
    DEFAULT_JUDGE,
    HF_JUDGE_IDS,
    JudgeName,
    build_judge,
    check_judge_name,
    get_judge,
    list_judges,
)

__all__ = ["DEFAULT_JUDGE", "HF_JUDGE_IDS", "Judge", "JudgeName", "Verdict", "build_judge", "check_judge_name",
           "get_judge", "list_judges"]
