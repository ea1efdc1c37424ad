"""Refusal/harm judges behind one interface; `get_judge(name)` builds one, `list_judges()` names them."""

from rlvr_safety.judges.base import Judge, Verdict
from rlvr_safety.judges.registry import HF_JUDGE_IDS, build_judge, get_judge, list_judges

__all__ = ["HF_JUDGE_IDS", "Judge", "Verdict", "build_judge", "get_judge", "list_judges"]
