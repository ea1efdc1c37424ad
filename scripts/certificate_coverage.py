"""Measure the certified floor's level and power by simulation with known ground truth; prints the docs table.

    python scripts/certificate_coverage.py --trials 4000 --seed 0

The numbers in docs/theory.md ("Does the floor hold at 95%?") come from this script.
"""

from __future__ import annotations

import argparse
import json
import time

from rlvr_safety.theory.coverage import SMALL_KL, simulate_coverage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--json", action="store_true", help="print the raw report as JSON")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rep = simulate_coverage(args.trials, alpha=args.alpha, seed=args.seed)
    elapsed = time.perf_counter() - t0
    if args.json:
        print(json.dumps(rep.to_dict(), indent=1))
        return
    print(f"{rep.trials} trials, alpha {args.alpha}, seed {args.seed}, {elapsed:.0f} s")
    print(f"floor above true S(policy): {rep.violations}/{rep.trials} = {rep.rate:.4f} "
          f"(95% upper limit {rep.rate_upper:.4f})")
    print(f"  S_ref lower limit above true S_ref: {rep.s_lower_misses / rep.trials:.4f} (nominal {args.alpha / 2})")
    print(f"  KL upper limit below true KL: {rep.kl_upper_misses / rep.trials:.4f} (nominal {args.alpha / 2})")
    for n, (m, t) in sorted(rep.kl_misses_by_n.items()):
        print(f"    n = {n}: {m}/{t} = {m / t:.4f}")
    print(f"  first-shipped point-estimate floor above truth: {rep.naive_rate:.4f}")
    print(f"power: non-vacuous floor where true KL < {SMALL_KL} and n >= 24: {rep.power:.3f} "
          f"({rep.small_kl_nonvacuous}/{rep.small_kl_trials})")
    print(f"bound giving the (non-vacuous) floor: {rep.floor_bounds}")
    print("\n| P_ref(unsafe) | n | trials | violations | non-vacuous | mean S(q) - floor |")
    print("|---|---|---|---|---|---|")
    for c in sorted(rep.cells.values(), key=lambda c: (c.unsafe_mass, c.n)):
        if c.trials:
            print(f"| {c.unsafe_mass:g} | {c.n} | {c.trials} | {c.violations} | {c.nonvacuous / c.trials:.2f} | "
                  f"{c.slack_sum / c.trials:.3f} |")


if __name__ == "__main__":
    main()
