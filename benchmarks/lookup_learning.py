"""Honest figures for the learning lookup engine (needs ../shared/nhs).

Prints, over sanity + dev + train gold (491 cases): pooled 5-fold CV grouped by normalised name and
leave-one-hospital-out CV, for the plain engine and for `fit` models (each fold fitted on the other
folds only); the simulated site rollout per hospital (fit on the others, add the reviewed labels of 20%
of its names, judge its other 80%); and the time `fit` takes on all 491 cases.
Usage: python benchmarks/lookup_learning.py [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nhs"
GOLD = ("sanity_gold.json", "dev_gold.json", "train_gold.json")
ROLLOUT_SITES = ("Auckland Metro-Agfa", "Central-Philips", "SouthIsland-SIRS COMRAD", "Southern-Karisma")


def _line(label: str, m: dict) -> str:
    def pct(k: str) -> str:
        return "   -  " if m.get(k) is None else f"{100 * m[k]:5.1f}%"

    ece = "  -  " if m.get("ece") is None else f"{m['ece']:.3f}"
    return (
        f"{label:<34} n={m['cases']:<4} top-1 {pct('top1')}  top-5 {pct('top5')}  "
        f"no-match P {pct('no_match_precision')} R {pct('no_match_recall')}  ECE {ece}  "
        f"auto-accept@99% {pct('auto_accept_coverage')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (SHARED / "NHS.json").is_file():
        sys.exit(f"needs the shared NHS data at {SHARED}")

    from nhs_lookup.cases import load_cases
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine
    from nhs_lookup.learning.crossval import cross_validate, make_folds
    from nhs_lookup.learning.fit import FitOptions, fit_model, fitted_engine
    from nhs_lookup.learning.rollout import simulate_rollout

    cases, _ = load_cases([SHARED / g for g in GOLD])
    cases = [c for c in cases if c.labelled]
    base = LookupEngine.load(LookupConfig(), SHARED / "NHS.json")
    opts = FitOptions(seed=args.seed)
    out: dict = {"cases": len(cases)}
    for scheme in ("5", "hospital"):
        folds = make_folds(cases, scheme, args.seed)
        plain = cross_validate(cases, folds, lambda _train: base, scheme)
        fitted = cross_validate(cases, folds, lambda train: fitted_engine(base, train, opts), scheme)
        name = "5-fold grouped by name" if scheme == "5" else "leave one hospital out"
        print(_line(f"{name}: plain engine", plain.pooled.to_dict()))
        print(_line(f"{name}: fitted model", fitted.pooled.to_dict()))
        out[f"cv_{scheme}"] = {"plain": plain.to_dict(), "fitted": fitted.to_dict()}
    out["rollout"] = []
    for site in ROLLOUT_SITES:
        r = simulate_rollout(base, cases, site, 0.2, args.seed, opts)
        print(_line(f"rollout {site[:18]}: before", r.before.to_dict()))
        print(_line(f"  + {r.reviewed} reviewed names: after", r.after.to_dict()))
        out["rollout"].append(r.to_dict())
    t0 = time.perf_counter()
    model = fit_model(base, cases, opts)
    fit_s = time.perf_counter() - t0
    print(f"fit on {len(cases)} cases: {fit_s:.1f} s, {len(model.associations)} learned terms, "
          f"no-match threshold {model.no_match_threshold:.3f}")  # fmt: skip
    out["fit_seconds"] = round(fit_s, 2)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
