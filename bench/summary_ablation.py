#!/usr/bin/env python3
"""Summary ablations, in one process: summarizers and their signals against human summaries.

Usage:
  python bench/summary_ablation.py PREPDIR [--budget 300]

PREPDIR holds vault/ and summaries.json ({note path: human summary}), as the shared summary benchmark
takes (e.g. its arbital-math vault); the gold notes' `description:` teasers are removed first. Every
variant summarises the same notes with ideaweave's own code; ROUGE-1/2/L F1 (lowercased word tokens, as
the shared benchmark computes them) and the cosine of the two texts' MiniLM vectors (the default model,
through llama.cpp) are printed as a table. The shared benchmark (which runs `ideaweave apply` and uses
sentence-transformers for the cosine) gives the figures that count.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from ideaweave.embedding import EmbedderOptions, LlamaEmbedder  # noqa: E402
from ideaweave.modelfiles import checkout_models_dir  # noqa: E402
from ideaweave.prose import sentences_of  # noqa: E402
from ideaweave.summarize import SummaryOptions, summarize_extractive, summarize_structured  # noqa: E402
from ideaweave.vault import ScanRules, Skipped, parse_note  # noqa: E402

WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return WORD.findall(text.lower())


def f1(a: list, b: list) -> float:
    overlap = sum((Counter(a) & Counter(b)).values())
    if not a or not b or not overlap:
        return 0.0
    p, r = overlap / len(a), overlap / len(b)
    return 2 * p * r / (p + r)


def lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge(system: str, gold: str) -> tuple[float, float, float]:
    a, b = tokens(system), tokens(gold)
    bigrams = lambda t: [tuple(t[i:i + 2]) for i in range(len(t) - 1)]  # noqa: E731
    common = lcs(a, b) if a and b else 0
    rl = 0.0 if not common else 2 * (common / len(a)) * (common / len(b)) / (common / len(a) + common / len(b))
    return f1(a, b), f1(bigrams(a), bigrams(b)), rl


def lead(note, budget: int) -> str:
    """The note's first prose sentences of four words or more, as many as fit the budget."""
    out = ""
    for s in (s.text for s in sentences_of(note) if len(s.text.split()) >= 4):
        if out and len(out) + len(s) + 1 > budget:
            break
        out = (out + " " + s).strip()
    return out[:budget]


def oracle(note, gold_vector: np.ndarray, embedder, budget: int) -> str:
    """An upper bound no summarizer reaches: the note's own prose sentences nearest the human summary
    (it sees the answer), as many as fit the budget."""
    found = [s.text for s in sentences_of(note) if len(s.text.split()) >= 4][:80]
    if not found:
        return ""
    nearest = np.argsort(-(embedder.embed(found) @ gold_vector), kind="stable")
    out = ""
    for i in nearest:
        if out and len(out) + len(found[i]) + 1 > budget:
            break
        out = (out + " " + found[i]).strip()
    return out[:budget]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prepdir")
    ap.add_argument("--budget", type=int, default=300)
    a = ap.parse_args()
    prep = Path(a.prepdir)
    gold = json.loads((prep / "summaries.json").read_text(encoding="utf-8"))
    notes = {}
    for path in gold:
        text = re.sub(r"(?m)^description: .*\n", "", (prep / "vault" / path).read_text(encoding="utf-8"), count=1)
        note = parse_note(path, text.encode("utf-8"), 0, ScanRules(), "")
        if not isinstance(note, Skipped):
            notes[path] = note
    embedder = LlamaEmbedder(checkout_models_dir() / "all-MiniLM-L6-v2.f16.gguf", EmbedderOptions(threads=1))
    options = SummaryOptions(max_chars=a.budget)
    variants = {
        "lead (first sentences to the budget)": lambda n: lead(n, a.budget),
        "centroid (sentence vectors)": lambda n: summarize_extractive(n, embedder, options.sentences, options.min_words, a.budget),
        "structured": lambda n: summarize_structured(n, options),
    }
    for signal in ("quote", "abstract", "length"):
        variants[f"structured without {signal}"] = lambda n, s=signal: summarize_structured(n, options, without={s})
    gold_vectors = dict(zip(notes, embedder.embed([gold[p] for p in notes])))
    variants["oracle: the sentences nearest the human summary (sees it; an upper bound)"] = (
        lambda n: oracle(n, gold_vectors[n.path], embedder, a.budget))
    print(f"{len(notes)} gold notes; budget {a.budget} characters")
    print(f"{'variant':42} ROUGE-1 ROUGE-2 ROUGE-L cosine  have  ms/note")
    for label, summarize in variants.items():
        started = time.perf_counter()
        made = {p: summarize(n) or "" for p, n in notes.items()}
        ms = (time.perf_counter() - started) * 1000 / len(notes)
        scores = np.array([rouge(made[p], gold[p]) for p in notes])
        have = [p for p in notes if made[p]]
        vectors = dict(zip(have, embedder.embed([made[p] for p in have]))) if have else {}
        cosine = np.mean([float(vectors[p] @ gold_vectors[p]) if p in vectors else 0.0 for p in notes])
        r1, r2, rl = scores.mean(axis=0)
        print(f"{label:42} {r1:.3f}   {r2:.3f}   {rl:.3f}   {cosine:.3f}  {len(have) / len(notes):.1%} {ms:7.1f}")
    embedder.close()


if __name__ == "__main__":
    main()
