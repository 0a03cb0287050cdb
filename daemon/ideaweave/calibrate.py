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


CALIBRATION_QUERIES = 200
MIN_CALIBRATION_QUERIES = 20
CALIBRATION_POOL = 200
_MULTIPLIERS = (0.0, 0.5, 1.5, 2.0)
_LINK_SPANS = re.compile(r"!?\[\[[^\[\]\n]*\]\]|!?\[[^\]\n]*\]\([^)\n]*\)")


# The held-out check: the sample is cut into this many folds; weights fitted on the others are scored on
# each one against the defaults. Calibrated weights are kept only when they win by more than the spread
# of that gain between folds (and by at least MIN_GAIN): otherwise the defaults cannot lose.
FOLDS = 4
MIN_GAIN = 0.005
METHOD = "held-out-folds-2"  # part of the cached result: a new method calibrates again


@dataclass(frozen=True)
class Calibration:
    weights: dict | None  # None: the defaults are kept
    queries: int
    default_score: float  # recall@10 + MRR/2 of the default weights on held-out folds
    calibrated_score: float  # the same for weights fitted on the other folds
    gains: tuple[float, ...]  # per fold: calibrated minus default, on notes the weights were not fitted on

    @property
    def gain(self) -> float:
        return float(np.mean(self.gains))

    @property
    def spread(self) -> float:
        return float(np.std(self.gains))

    @property
    def kept(self) -> bool:
        return self.weights is not None


def _evaluate(samples: list, weights: dict, k: int = 10) -> float:
    """recall@k + MRR/2 over samples of (z-scored components restricted to a pool, gold mask)."""
    total = 0.0
    for z, gold in samples:
        fused = sum(weights.get(name, 0.0) * z[name] for name in z)
        top = np.argsort(-fused, kind="stable")[:k]
        hits = gold[top]
        total += hits.sum() / max(gold.sum(), 1) + 0.5 * next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    return total / max(len(samples), 1)


def components_unlinked(relater: Relater, path: str, body: str) -> dict:
    """The evidence about a note as if its author had not written its links yet: its outgoing links
    removed from `relater`'s link graph (a copy of its own: see `calibrate`) while it is scored, and cut out
    of its text. The links other notes make stay."""
    c = relater.corpus
    links = c.graph.outlinks(path)
    c.graph.replace_outlinks(path, ())
    try:
        return relater.components(c.index[path], text=_LINK_SPANS.sub(" ", body))
    finally:
        c.graph.replace_outlinks(path, links)


def _calibration_sample(relater: Relater, path: str, body: str) -> tuple[dict, np.ndarray] | None:
    """One held-out query, ranked as if the user had not written the note's links yet.

    `relater` ranks over its own copy of the link graph: the note's outgoing links are removed from it
    while the note is scored, and the links in its text are cut out. Only those: the links other notes
    make (to this note, or from its neighbours to its targets) are there when a user writes a new note,
    and hiding them too (as the first calibration did) taught it that backlinks and the neighbours'
    links are worth less than they are.
    """
    c = relater.corpus
    q = c.index[path]
    gold_paths = c.graph.outlinks(path)
    parts = components_unlinked(relater, path, body)
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
    """Weights chosen on the vault's own links: hold each sampled note's links out, rank, keep what finds
    them best, and check the choice on notes it was not fitted on (folds) before it may replace the prior."""
    c = relater.corpus
    eligible = [p for i, p in enumerate(c.paths) if not c.template[i] and len(c.graph.outlinks(p)) >= 3]
    if len(eligible) < MIN_CALIBRATION_QUERIES:
        return None
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(CALIBRATION_QUERIES, len(eligible)), replace=False).tolist())
    held_out = Relater(c.with_graph(c.graph.copy()), relater.weights)  # the snapshot's own graph stays whole
    samples = []
    for path in chosen:
        body = read_body(path)
        sample = _calibration_sample(held_out, path, body) if body is not None else None
        if sample is not None:
            samples.append(sample)
    if len(samples) < MIN_CALIBRATION_QUERIES:
        return None
    prior = dict(prior or DEFAULT_WEIGHTS)
    folds = np.array_split(np.random.default_rng(seed).permutation(len(samples)), FOLDS)
    gains, defaults, fitted = [], [], []
    for f, held_out in enumerate(folds):
        train = [samples[i] for g, fold in enumerate(folds) if g != f for i in fold]
        test = [samples[i] for i in held_out]
        weights = _fit(train, prior)
        defaults.append(_evaluate(test, prior))
        fitted.append(_evaluate(test, weights))
        gains.append(fitted[-1] - defaults[-1])
    # Why the first calibration lost on every vault measured: it scored the weights it chose on the very
    # notes it chose them on, so any sample's noise looked like a gain. Here a gain must show on notes the
    # weights never saw, in every fold on average, by more than the folds disagree.
    kept = float(np.mean(gains)) > max(MIN_GAIN, float(np.std(gains)))
    return Calibration(_fit(samples, prior) if kept else None, len(samples), float(np.mean(defaults)),
                       float(np.mean(fitted)), tuple(round(g, 5) for g in gains))


def _fit(samples: list, prior: dict) -> dict:
    """Coordinate ascent from the prior, shrunk half-way back to it so a small sample cannot run away."""
    weights, best = dict(prior), _evaluate(samples, prior)
    for _ in range(2):
        for name in COMPONENTS:
            if name == "emb":
                continue  # the scale anchor
            for multiplier in _MULTIPLIERS:
                trial = dict(weights, **{name: round(max(weights[name], 0.05) * multiplier, 4)})
                score = _evaluate(samples, trial)
                if score > best + 1e-4:
                    best, weights = score, trial
    return {name: round((prior[name] + weights[name]) / 2, 4) for name in COMPONENTS}


def weights_for(relater: Relater, store: Store, mode: str, configured: dict, read_body) -> dict:
    """The fusion weights for this vault: the configured ones, or ("auto") calibrated from them on the
    vault's own links when that wins on held-out notes; checked again once the vault has changed by a tenth."""
    if mode != "auto":
        return dict(configured)
    c = relater.corpus
    links = c.graph.number_of_edges()
    key = json.dumps(configured, sort_keys=True)
    data = calibration_record(store)
    if data:
        fresh = abs(data["notes"] - len(c)) <= 0.1 * data["notes"] and abs(data["links"] - links) <= 0.1 * max(data["links"], 1)
        if fresh and data.get("prior") == key and data.get("method") == METHOD:
            return data["weights"] or dict(configured)
    result = calibrate(relater, read_body, prior=configured)
    weights = result.weights if result else None
    store.put_setting("relate.calibration", json.dumps({
        "method": METHOD, "notes": len(c), "links": links, "prior": key, "weights": weights,
        "queries": result.queries if result else 0,
        "default_score": result.default_score if result else None,
        "calibrated_score": result.calibrated_score if result else None,
        "gain": result.gain if result else None, "spread": result.spread if result else None,
    }))
    if result is None:
        log.info("too few linked notes to calibrate; using the configured weights")
    elif result.kept:
        log.info("calibrated relatedness weights on %d notes (held-out gain %+.3f, spread %.3f): %s",
                 result.queries, result.gain, result.spread, weights)
    else:
        log.info("calibration did not beat the configured weights on held-out notes (gain %+.3f, spread %.3f); "
                 "keeping them", result.gain, result.spread)
    return weights or dict(configured)


def calibration_record(store: Store) -> dict | None:
    """What the last calibration measured and chose (None before the first one)."""
    cached = store.get_setting("relate.calibration")
    return json.loads(cached) if cached else None


def describe_weights(mode: str, record: dict | None) -> str:
    """One line for `status`: which weights rank this vault's related notes, and why."""
    if mode != "auto":
        return "the configured weights (relate.weights = \"fixed\")"
    if not record or record.get("method") != METHOD:
        return "the configured weights (not calibrated yet)"
    if not record.get("queries"):
        return "the configured weights (too few linked notes to calibrate on)"
    check = f"held-out gain {record['gain']:+.3f}, spread {record['spread']:.3f}, {record['queries']} notes"
    if record.get("weights"):
        return f"calibrated on this vault's links ({check})"
    return f"the configured weights: calibration did not win on held-out notes ({check})"
