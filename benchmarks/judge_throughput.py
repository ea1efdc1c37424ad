"""Judge throughput on CPU: verdicts per second of the keyword and learned judges on 1,000 responses.

The responses are XSTest completions, repeated and varied (a numbered suffix, so no two texts are equal) up to
--n. The keyword judge is the baseline; the learned judge's rate is printed with its ratio to it. Model loading is
timed apart, since a run pays it once.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from rlvr_safety.judges import get_judge
from rlvr_safety.paths import data_dir

XSTEST = "xstest/xstest_v2_completions_mistralinstruct.csv"


def load_pairs(root: Path, n: int) -> tuple[list[str], list[str]]:
    with (root / XSTEST).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    prompts, responses = [], []
    for i in range(n):
        row = rows[i % len(rows)]
        prompts.append(row["prompt"])
        responses.append(row["completion"] + ("" if i < len(rows) else f" (variant {i // len(rows)})"))
    return prompts, responses


def rate(judge_name: str, prompts: list[str], responses: list[str]) -> tuple[float, float]:
    """(load seconds, verdicts per second) for one judge; load = construction + a one-item warm-up call."""
    start = time.perf_counter()
    judge = get_judge(judge_name)
    judge.judge(prompts[:1], responses[:1])
    load = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = judge.judge(prompts, responses)
    elapsed = time.perf_counter() - start
    assert len(verdicts) == len(responses)
    return load, len(verdicts) / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = data_dir(args.data_dir) or Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (root / XSTEST).exists():
        print(
            f"error: {root / XSTEST} not found; pass --data-dir or set RLVR_SAFETY_DATA_DIR", file=sys.stderr
        )
        return 2
    import torch

    prompts, responses = load_pairs(root, args.n)
    print(f"{args.n} responses, CPU threads: {torch.get_num_threads()}")
    kw_load, kw_rate = rate("keyword", prompts, responses)
    print(f"keyword: {kw_rate:10.1f} verdicts/s  (load {kw_load:.2f} s)")
    lj_load, lj_rate = rate("learned", prompts, responses)
    print(
        f"learned: {lj_rate:10.1f} verdicts/s  (load {lj_load:.2f} s)  ratio learned/keyword = {lj_rate / kw_rate:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
