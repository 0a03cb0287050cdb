"""Per-vault calibration of the fusion weights: the vault's own links held out and predicted."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from .relate import COMPONENTS, DEFAULT_WEIGHTS, Relater, standardised, top_indices
from .store import Store

log = logging.getLogger(__name__)


CALIBRATION_QUERIES = 120
MIN_CALIBRATION_QUERIES = 20
CALIBRATION_POOL = 200
_MULTIPLIERS = (0.0, 0.5, 1.5, 2.0)
_LINK_SPANS = re.compile(r"!?\[\[[^\[\]\n]*\]\]|!?\[[^\]\n]*\]\([^)\n]*\)")


@dataclass(frozen=True)
class Calibration:
    weights: dict
    queries: int
    default_score: float  # recall@10 + MRR/2 of the default weights on the held-out links
    calibrated_score: float


def _evaluate(samples: list, weights: dict, k: int = 10) -> float:
    """recall@k + MRR/2 over samples of (z-scored components restricted to a pool, gold mask)."""
    total = 0.0
    for z, gold in samples:
        fused = sum(weights.get(name, 0.0) * z[name] for name in z)
        top = np.argsort(-fused, kind="stable")[:k]
        hits = gold[top]
        total += hits.sum() / max(gold.sum(), 1) + 0.5 * next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    return total / max(len(samples), 1)


def _calibration_sample(relater: Relater, path: str, body: str) -> tuple[dict, np.ndarray] | None:
    """One held-out query: the note's links are hidden from every component, then scored like a query."""
    c = relater.corpus
    q = c.index[path]
    gold_paths = c.graph.outlinks(path)
    masked = _LINK_SPANS.sub(" ", body)
    parts = relater.components(q, exclude_links=gold_paths, text=masked)
    candidates = ~c.template
    candidates[q] = False
    z = standardised(parts, candidates)
    pool = set()
    for name in COMPONENTS:
        ranked = np.where(candidates, z[name], -np.inf)
        pool.update(top_indices(ranked, CALIBRATION_POOL).tolist())
    pool = np.array(sorted(j for j in pool if candidates[j]))
    gold = np.array([c.paths[j] in gold_paths for j in pool])
    if not gold.any():
        return None
    return {name: z[name][pool] for name in COMPONENTS}, gold


def calibrate(relater: Relater, read_body, prior: dict | None = None, seed: int = 0) -> Calibration | None:
    """Weights chosen on the vault's own links: hold each sampled note's links out, rank, keep what
    finds them best. Shrunk half-way to the defaults so a small or odd sample cannot run away."""
    c = relater.corpus
    eligible = [p for i, p in enumerate(c.paths) if not c.template[i] and len(c.graph.outlinks(p)) >= 3]
    if len(eligible) < MIN_CALIBRATION_QUERIES:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(CALIBRATION_QUERIES, len(eligible)), replace=False).tolist())
    samples = []
    for path in chosen:
        body = read_body(path)
        sample = _calibration_sample(relater, path, body) if body is not None else None
        if sample is not None:
            samples.append(sample)
    if len(samples) < MIN_CALIBRATION_QUERIES:
        return None
    prior = dict(prior or DEFAULT_WEIGHTS)
    weights = dict(prior)
    best = default_score = _evaluate(samples, weights)
    for _ in range(2):
        for name in COMPONENTS:
            if name == "emb":
                continue  # the scale anchor
            for multiplier in _MULTIPLIERS:
                trial = dict(weights, **{name: round(max(weights[name], 0.05) * multiplier, 4)})
                score = _evaluate(samples, trial)
                if score > best + 1e-4:
                    best, weights = score, trial
    shrunk = {name: round((prior[name] + weights[name]) / 2, 4) for name in COMPONENTS}
    return Calibration(shrunk, len(samples), default_score, _evaluate(samples, shrunk))


def weights_for(relater: Relater, store: Store, mode: str, configured: dict, read_body) -> dict:
    """The fusion weights for this vault: the configured ones, or ("auto") calibrated from them on the
    vault's own links and cached until the vault has changed by a tenth."""
    if mode != "auto":
        return dict(configured)
    c = relater.corpus
    links = c.graph.graph.number_of_edges()
    key = json.dumps(configured, sort_keys=True)
    cached = store.get_setting("relate.calibration")
    if cached:
        data = json.loads(cached)
        fresh = abs(data["notes"] - len(c)) <= 0.1 * data["notes"] and abs(data["links"] - links) <= 0.1 * max(data["links"], 1)
        if fresh and data.get("prior") == key:
            return data["weights"] or dict(configured)
    result = calibrate(relater, read_body, prior=configured)
    weights = result.weights if result else None
    store.put_setting("relate.calibration", json.dumps({
        "notes": len(c), "links": links, "prior": key, "weights": weights,
        "queries": result.queries if result else 0,
        "default_score": result.default_score if result else None,
        "calibrated_score": result.calibrated_score if result else None,
    }))
    if result:
        log.info("calibrated relatedness weights on %d held-out notes: %s", result.queries, weights)
    else:
        log.info("too few linked notes to calibrate; using the configured weights")
    return weights or dict(configured)
