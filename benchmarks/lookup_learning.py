"""Honest figures for the learning lookup engine (needs ../shared/nhs).

Prints, over sanity + dev + train gold (491 cases): pooled 5-fold CV grouped by normalised name and
leave-one-hospital-out CV, for the plain engine and for `fit` models (each fold fitted on the other
folds only) with each correctness model (default `unresolved`: logistic on the raw confidence, the review
flag and the unresolved bit; `flagged`: without the unresolved bit; `features`: on every answer feature;
`isotonic`: the raw confidence only); the simulated site rollout
per hospital (fit on the others, add the reviewed labels of 20% of its names, judge its other 80%);
the time `fit` takes on all 491 cases; and lookup speed with the fitted model on distinct names.

Auto-accept coverage at 99% precision is printed twice: "honest" (each fold accepts at the threshold it
chose on its training folds; the precision it reached follows in brackets) and "oracle" (the threshold
picked on the held-out answers themselves).
Usage: python benchmarks/lookup_learning.py [--seed 0] [--json out.json] [--quick]
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
    line = (
        f"{label:<40} n={m['cases']:<4} top-1 {pct('top1')}  top-5 {pct('top5')}  "
        f"no-match P {pct('no_match_precision')} R {pct('no_match_recall')}  ECE {ece}  "
        f"auto-accept@99% {pct('auto_accept_coverage')}"
    )
    if m.get("auto_accept_oracle_coverage") is not None:
        line += f" (P {pct('auto_accept_precision')}; oracle {pct('auto_accept_oracle_coverage')})"
    return line


def _speed(base, model) -> dict:
    """Distinct RIS names per second through lookup_many in this process (fresh parse caches), for the
    plain engine and the engine of *model*."""
    from nhs_lookup.cases import load_cases
    from nhs_lookup.engine import LookupEngine
    from nhs_lookup.learning.model import engine_with

    cases, _ = load_cases([SHARED / "ris_exam_names_dev.json"])
    queries = list({(c.query.exam_name, c.query.modality_code): c.query for c in cases}.values())
    out: dict = {"distinct_names": len(queries)}
    for label in ("plain", "fitted"):
        plain = LookupEngine(base.config, base.catalogue, base.index)
        eng = plain if label == "plain" else engine_with(base, model)
        t0 = time.perf_counter()
        eng.lookup_many(queries)
        out[f"{label}_names_per_s"] = round(len(queries) / (time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="default correctness model only, no rollout")
    args = ap.parse_args()
    if not (SHARED / "NHS.json").is_file():
        sys.exit(f"needs the shared NHS data at {SHARED}")

    from nhs_lookup.cases import load_cases
    from nhs_lookup.config import LookupConfig
    from nhs_lookup.engine import LookupEngine
    from nhs_lookup.learning.crossval import cross_validate, make_folds
    from nhs_lookup.learning.fit import CORRECTNESS, FitOptions, fit_model, fitted_engine
    from nhs_lookup.learning.rollout import simulate_rollout

    cases, _ = load_cases([SHARED / g for g in GOLD])
    cases = [c for c in cases if c.labelled]
    base = LookupEngine.load(LookupConfig(), SHARED / "NHS.json")
    opts = FitOptions(seed=args.seed)
    out: dict = {"cases": len(cases)}
    for scheme in ("5", "hospital"):
        folds = make_folds(cases, scheme, args.seed)
        plain = cross_validate(cases, folds, lambda _train: base, scheme)
        name = "5-fold grouped by name" if scheme == "5" else "leave one hospital out"
        print(_line(f"{name}: plain engine", plain.pooled.to_dict()))
        out[f"cv_{scheme}"] = {"plain": plain.to_dict()}
        for kind in [opts.correctness] + (
            [] if args.quick else sorted(set(CORRECTNESS) - {opts.correctness})
        ):
            o = FitOptions(seed=args.seed, correctness=kind)
            fitted = cross_validate(cases, folds, lambda train, o=o: fitted_engine(base, train, o), scheme)
            print(_line(f"{name}: fitted ({kind})", fitted.pooled.to_dict()))
            out[f"cv_{scheme}"][f"fitted_{kind}"] = fitted.to_dict()
    out["rollout"] = []
    for site in () if args.quick else ROLLOUT_SITES:
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
    out["speed"] = _speed(base, model)
    sp = out["speed"]
    print(f"lookup_many on {sp['distinct_names']} distinct RIS names, one process: plain "
          f"{sp['plain_names_per_s']}/s, fitted model {sp['fitted_names_per_s']}/s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
