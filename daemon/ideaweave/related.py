"""The one answer to "what are this note's related notes".

The CLI (`ideaweave related`), the API (`/related`, the bridge's panel) and the daemon (the `related`
list it writes) all ask `RelatedNotes`, so every surface names the same notes in the same order:
the note's own list as ideaweave writes it (links the user pinned first, links the user rejected
never, private notes never), then, when more are asked for, the next candidates of the ranking.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import frontmatter
from .relate import Relater, Suggestion
from .store import Store
from .vault import LinkResolver
from .writer import BYSTANDER_HYSTERESIS, HYSTERESIS, Candidate, Keys, NoteState, plan_related


def link_string(resolver: LinkResolver, path: str, heading: str | None) -> str:
    """The link Obsidian resolves to path, with the section when one matched; shortest unambiguous text."""
    text = resolver.link_text(path)
    # Headings holding link syntax cannot be linked to reliably: link the note instead.
    if heading and not any(ch in heading for ch in "[]|#^"):
        return f"[[{text}#{heading}]]"
    return f"[[{text}]]"


def link_target(resolver: LinkResolver, link: str, source: str) -> str | None:
    """The note a link string like "[[Note#Heading|alias]]" points to."""
    inner = link.strip()
    if inner.startswith("[[") and inner.endswith("]]"):
        inner = inner[2:-2]
    target = re.split(r"[|#^]", inner, maxsplit=1)[0]
    return resolver.resolve(target, source) if target else None


@dataclass(frozen=True)
class RelatedNote:
    path: str
    link: str  # the link text Obsidian resolves, as it is (or would be) written into `related`
    pinned: bool  # the user put it there (in the note or through the bridge)
    suggestion: Suggestion  # score, the passage that matched, why

    def as_json(self) -> dict:
        return {**self.suggestion.as_json(), "link": self.link, "pinned": self.pinned}


@dataclass(frozen=True)
class Feedback:
    given: frozenset[str]  # every note the user pinned or rejected through the bridge
    rejected: frozenset[str]
    pinned: tuple[str, ...]  # pinned through the bridge and fit to be written, by path


class RelatedNotes:
    """Ranks with the vault's weights (`relater`) and applies the user's feedback and the privacy rules.

    `read_note(path)` gives the note's bytes as they are on disk (None when unreadable): the list the
    note holds is part of the answer.
    """

    def __init__(self, relater: Relater, store: Store, resolver: LinkResolver, keys: Keys,
                 read_note: Callable[[str], bytes | None]):
        self.relater = relater
        self.corpus = relater.corpus
        self.store = store
        self.resolver = resolver
        self.keys = keys
        self.read_note = read_note

    def feedback(self, path: str) -> Feedback:
        given = self.store.feedback_for(path)
        index, private = self.corpus.index, self.corpus.private
        # A pinned private note is never written into another note: privacy outranks the pin.
        pinned = tuple(t for t, a in sorted(given.items()) if a == "pinned" and t in index and not private[index[t]])
        return Feedback(frozenset(given), frozenset(t for t, a in given.items() if a == "rejected"), pinned)

    def candidates(self, path: str, slack: int, current_related: object, feedback: Feedback | None = None
                   ) -> list[Candidate]:
        """What the note's `related` list is chosen from, best first: bridge pins, then the ranking (enough
        of it to refill the list within `slack`), each note once."""
        feedback = feedback or self.feedback(path)
        return self._candidates(path, feedback, self._ranked(path, feedback, slack, 0), current_related)

    def for_note(self, path: str, k: int, include_private: bool = False) -> list[RelatedNote]:
        """The note's related notes, best first: what its `related` list holds, or will hold when next
        written, then the next candidates up to k."""
        if path not in self.corpus.index:
            return []
        current, last = self._managed_state(path)
        # Untouched since ideaweave wrote it, the note keeps its list while its links stay near the top
        # (the daemon's widest window); edited by the user, it is planned as the next write will be.
        untouched = current is not None and last is not None and current.get(self.keys.related) == last.get(self.keys.related)
        slack = BYSTANDER_HYSTERESIS if untouched else HYSTERESIS
        feedback = self.feedback(path)
        ranked = self._ranked(path, feedback, slack, k)
        candidates = self._candidates(path, feedback, ranked, (current or {}).get(self.keys.related))
        links, pinned_links = [c.link for c in candidates], set()
        if current is not None:
            planned, _problem, _rejects, new_pins = plan_related(
                NoteState(path, current, last, slack), candidates, self.keys, set(feedback.rejected))
            if planned is not None:
                links = list(dict.fromkeys(planned + links))
                pinned_links = set(new_pins) | set((last or {}).get("pinned", []))
        if include_private:  # asked for by the owner at the CLI: never part of the written list
            extra = self.relater.rank(path, k=k, exclude=set(feedback.given), include_private=True)
            ranked += extra
            links += [link_string(self.resolver, s.path, s.heading) for s in extra]
        return self._as_related(path, links, {s.path: s for s in ranked}, set(feedback.pinned), pinned_links, k)

    def _ranked(self, path: str, feedback: Feedback, slack: int, extra: int) -> list[Suggestion]:
        """Enough of the ranking to refill the list within `slack` (or `extra` when more are asked for);
        every note the user pinned or rejected is placed by the feedback, not by its rank."""
        return self.relater.rank(path, k=max(self.keys.count + slack + 2, extra), exclude=set(feedback.given))

    def _candidates(self, path: str, feedback: Feedback, ranked: Sequence[Suggestion], current_related: object) -> list[Candidate]:
        pins = [Candidate(t, link_string(self.resolver, t, None)) for t in feedback.pinned]
        ranked_candidates = pins + [Candidate(s.path, link_string(self.resolver, s.path, s.heading)) for s in ranked]
        return without_duplicate_targets(ranked_candidates, current_related, self.resolver, path)

    def _managed_state(self, path: str) -> tuple[dict | None, dict | None]:
        """(the note's managed values, what ideaweave last wrote there); None when it cannot be read."""
        raw = self.read_note(path)
        current = frontmatter.read_managed(raw, (self.keys.related, self.keys.summary)) if raw is not None else None
        if isinstance(current, frontmatter.Unwritable):
            current = None
        last = self.store.last_written(path)
        return current, (last.values if last else None)

    def _as_related(self, path: str, links: Sequence[str], ranked: dict[str, Suggestion], pinned_paths: set[str],
                    pinned_links: set[str], k: int) -> list[RelatedNote]:
        targets: dict[str, str] = {}  # note -> its link, in order
        for link in links:
            target = link_target(self.resolver, link, path)
            if target is not None and target != path and target in self.corpus.index:
                targets.setdefault(target, link)
            if len(targets) == k:
                break
        # Links kept in the note or pinned, but not among the ranked: explained with the same evidence.
        explained = {**self.relater.explain(path, [t for t in targets if t not in ranked]), **ranked}
        return [RelatedNote(t, link, t in pinned_paths or link in pinned_links, explained[t])
                for t, link in targets.items() if t in explained]


def without_duplicate_targets(candidates: Sequence[Candidate], present: object, resolver: LinkResolver,
                              source: str) -> list[Candidate]:
    """Drop candidates whose note is already in `related` under another link text (an alias, a heading)."""
    links = present if isinstance(present, list) else []
    targets = {link_target(resolver, link, source) for link in links if isinstance(link, str)}
    seen, kept = set(), []
    for c in candidates:
        if c.path in seen or (c.path in targets and c.link not in links):
            continue
        seen.add(c.path)
        kept.append(c)
    return kept
