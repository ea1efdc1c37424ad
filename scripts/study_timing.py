"""Per-stage wall and CPU seconds of a study folder (from its ledger, OUT/study.sqlite), grouped by stage kind, with
shares of the total: the table docs/demo-results.md carries. On a shared machine compare CPU seconds and shares;
wall seconds include waiting for other processes.

Usage: python scripts/study_timing.py OUT [--by-stage]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--by-stage", action="store_true", help="one row per stage, not per kind")
    args = ap.parse_args()
    with sqlite3.connect(args.out / "study.sqlite") as c:
        rows = c.execute("SELECT stage_id, status, started, finished, artifacts FROM stages").fetchall()
    stages = []
    for sid, status, started, finished, artifacts in rows:
        a = json.loads(artifacts or "{}")
        stages.append((sid, status, float(a.get("seconds") or 0.0), a.get("cpu_seconds"), started, finished))
    stages.sort(key=lambda r: r[4] or 0)
    wall = sum(r[2] for r in stages)
    cpu = sum(float(r[3] or 0.0) for r in stages)
    span = (max(r[5] or 0 for r in stages) - min(r[4] or 0 for r in stages)) if stages else 0.0
    groups: dict[str, list[tuple]] = {}
    for r in stages:
        groups.setdefault(r[0] if args.by_stage else r[0].split(":")[0], []).append(r)
    print(f"| {'stage' if args.by_stage else 'stage kind'} | n | wall s | wall share | CPU s | CPU share |")
    print("|---|---|---|---|---|---|")
    for key, rs in groups.items():
        w, cs = sum(r[2] for r in rs), [r[3] for r in rs]
        c_tot = sum(float(x) for x in cs if x is not None)
        cpu_txt = f"{c_tot:.0f} | {c_tot / cpu:.0%}" if cpu and all(x is not None for x in cs) else "- | -"
        print(f"| {key} | {len(rs)} | {w:.0f} | {w / wall:.0%} | {cpu_txt} |")
    print(f"| total | {len(stages)} | {wall:.0f} | 100% | {cpu:.0f} | 100% |")
    print(f"first stage start to last stage end: {span:.0f} s")


if __name__ == "__main__":
    main()
