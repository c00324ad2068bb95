"""Benchmark the classifier on real messages: accuracy, unclassified share, confidently wrong, speed.

Quality: the labelled real texts of ``tests/data/real_messages`` (BC <-> Dataverse texts, near-domain
texts that must stay unclassified, non-English texts), judged by
:func:`syncanalysis.analysis.evaluate.evaluate`.

Speed: 10,000 distinct texts made from the real BC <-> Dataverse texts by varying their values (keys,
numbers, GUIDs), classified with :func:`~syncanalysis.analysis.signatures.classify` in a fresh process
state (caches cleared, the matcher built inside the timing). The baseline, measured in the same run,
is the naive approach: each text tried against the regex of every template the classifier knows (the
reviewed catalogue, BC's labels, Dataverse's messages) in turn, on a random subsample scaled linearly
(said in the output).

Usage: ``python benchmarks/bench_classify_real.py [--texts N] [--naive-sample N]``.
Last line: one JSON object with the figures and their bounds.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from pathlib import Path

import numpy as np

from syncanalysis.analysis import signatures as sg
from syncanalysis.analysis.evaluate import evaluate, read_labelled

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_messages"
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUM = re.compile(r"(?<![\w-])\d{2,6}(?!\w)")


def variants(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct texts: the real texts with their GUIDs and numbers replaced by random ones."""
    out: set[str] = set()
    while len(out) < n:
        t = texts[int(rng.integers(len(texts)))]
        t = _GUID.sub(lambda _: str(uuid.UUID(bytes=rng.bytes(16))), t)
        t = _NUM.sub(lambda m: str(int(rng.integers(10, 10 ** len(m.group(0))))), t)
        if t == texts[0] or t in out:
            t = f"{t} Request ID: {uuid.UUID(bytes=rng.bytes(16))}"
        out.add(t)
    return sorted(out)


def naive(texts: list[str]) -> list[str]:
    """Per text: try the regex of every template the classifier knows (all tiers), most specific first."""
    m = sg._matcher()
    tpls = sorted(m.templates + m.derived, key=lambda t: (t.tier, -t.weight))
    for t in tpls:
        _ = t.regex  # compiled before the timing: the naive loop gets its regexes for free
    causes = []
    for text in texts:
        clean = " ".join(text.split())
        causes.append(next((t.category for t in tpls if t.regex.fullmatch(clean)), "unclassified"))
    return causes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=10_000)
    ap.add_argument("--naive-sample", type=int, default=300)
    args = ap.parse_args()

    figures: dict[str, float | int] = {}
    for name, key in (("bc_dataverse.csv", "bc_dataverse"), ("near_domain.csv", "near_domain"),
                      ("non_english.csv", "non_english"), ("held_out.csv", "second_collection")):
        ev = evaluate(read_labelled(DATA / name))
        print(f"{name}: {ev.n} texts, {ev.share('right'):.1%} right, {ev.share('unclassified'):.1%} unclassified, "
              f"{ev.count('wrong')} confidently wrong")
        for r in ev.rows[ev.rows.verdict == "wrong"].itertuples():
            print(f"  wrong: {r.id} expected {r.expected_cause}, got {r.got} ({r.match}): {r.text[:100]!r}")
        if "source_kind" in ev.rows:  # BC's own labels overlap the shipped label catalogue: say how the rest fare
            by_kind = ev.rows.groupby("source_kind")["verdict"].apply(lambda v: f"{(v == 'right').mean():.0%} of {len(v)}")
            print("  right per source kind: " + ", ".join(f"{k} {v}" for k, v in by_kind.items()))
        figures[f"{key}_n"] = ev.n
        figures[f"{key}_accuracy"] = round(ev.share("right"), 3)
        figures[f"{key}_unclassified_share"] = round(ev.share("unclassified"), 3)
        figures[f"{key}_wrong"] = ev.count("wrong")
    figures["bc_dataverse_accuracy_min"] = 0.9
    figures["bc_dataverse_wrong_per_text"] = round(figures["bc_dataverse_wrong"] / figures["bc_dataverse_n"], 4)
    figures["bc_dataverse_wrong_per_text_max"] = round(1 / 30, 4)
    figures["near_domain_accuracy_min"] = 1.0
    figures["non_english_wrong_max"] = 0
    figures["second_collection_accuracy_min"] = 0.9
    figures["second_collection_wrong_max"] = 1

    real = read_labelled(DATA / "bc_dataverse.csv")["text"].tolist()
    texts = variants(real, args.texts, np.random.default_rng(7))
    sg._MATCHERS.clear()  # build the matcher inside the timing, as a new process does
    t = time.perf_counter()
    sg.classify(texts)
    classify_s = time.perf_counter() - t
    print(f"classify: {len(texts):,} distinct texts in {classify_s:.2f} s (the matcher rebuilt inside the timing)")

    rng = np.random.default_rng(1)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(args.naive_sample, len(texts)), replace=False)]
    t = time.perf_counter()
    naive(sample)
    naive_s = (time.perf_counter() - t) * len(texts) / len(sample)
    print(f"naive loop over all {len(sg._matcher().templates) + len(sg._matcher().derived):,} templates: "
          f"{len(sample):,} texts, scaled linearly to {len(texts):,} = {naive_s:.1f} s (and it knows no codes, "
          "rules or wrappers)")
    figures.update({"texts": len(texts), "classify_s": round(classify_s, 2), "classify_s_max": 60,
                    "naive_s": round(naive_s, 1), "speedup_vs_naive": round(naive_s / classify_s, 2),
                    "speedup_vs_naive_min": 5})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
