"""Benchmark: the observer-rating tables for a national program.

Run: python benchmarks/interrater.py                 # 1,000 cohorts
     python benchmarks/interrater.py --cohorts 100

Builds a seeded ratings frame (``simulate_ratings``: per cohort 30 providers rated at 2 waves
on 8 items in 3 domains by 6 tutors, 30% of the targets double-rated and 5% of them
triple-rated) and times each table of ``pipelines/analysis/interrater.py`` on it: wall
seconds (best of ``--repeat``) and rows. The budget: all tables together within 10% of the
national benchmark (about 5 s of its 52-57 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._machine import describe  # noqa: E402
from pipelines.analysis.interrater import (  # noqa: E402
    interrater_table,
    level_distribution,
    rated_scores,
    raters_table,
    score_reliability,
    simulate_ratings,
)


def national_ratings(cohorts: int, seed: int = 20261202):
    return simulate_ratings(seed=seed, cohorts=cohorts, participants=30, raters=6, items=8,
                            domains=3, double_share=0.30, triple_share=0.05,
                            severity={0: -0.8}, drift={1: -0.8})


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def planted_recovery(raters) -> str:
    """How often each cohort's planted harsh (r0) and drifting (r1) tutor is flagged."""
    total = raters[(raters["measure"] == "total") & (raters["wave"] == "ALL")
                   & (raters["cohort"] != "ALL")]
    tutor = total["rater"].str.rsplit("-", n=1).str[1]
    others = total[~tutor.isin(["r0", "r1"])]
    return (f"planted (per cohort, ~7 shared targets per tutor): harsh tutor flagged in "
            f"{total.loc[tutor == 'r0', 'outside_band'].mean():.0%} of cohorts, drifting tutor "
            f"in {total.loc[tutor == 'r1', 'drifting'].mean():.0%}; other tutors flagged "
            f"{others[['outside_band', 'drifting']].any(axis=1).mean():.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    ratings = national_ratings(args.cohorts)
    print(f"{args.cohorts} cohorts: {len(ratings):,} ratings "
          f"({ratings.groupby(['cohort', 'participant', 'wave']).ngroups:,} targets), "
          f"built in {time.perf_counter() - start:.1f} s")
    table = {}
    steps = [
        ("interrater_table", lambda: interrater_table(ratings)),
        ("raters_table", lambda: raters_table(ratings, waves=["pre", "post"])),
        ("rated_scores", lambda: rated_scores(ratings)),
        ("score_reliability", lambda: score_reliability(ratings, table["interrater_table"])),
        ("level_distribution", lambda: level_distribution(ratings, harmful_below=2,
                                                          helpful_from=3, levels=[1, 2, 3, 4])),
    ]
    total = 0.0
    print(f"{'table':<20} {'seconds':>8} {'rows':>10}")
    for name, fn in steps:
        seconds, table[name] = best_of(args.repeat, fn)
        total += seconds
        print(f"{name:<20} {seconds:8.2f} {len(table[name]):>10,}")
    print(f"{'all':<20} {total:8.2f}")
    print(planted_recovery(table["raters_table"]))
    print(describe())


if __name__ == "__main__":
    main()
