import { App, SuggestModal } from "obsidian";
import { ApiClient, asApiError } from "./api-client";
import { PassageSearch, SearchHit } from "./contract";
import { child, formatScore, linktextForHit } from "./related-render";
import { Timers } from "./timers";

const MIN_QUERY_LENGTH = 2;
const RESULT_COUNT = 20;
/**
 * How long typing must pause before the daemon is asked. Short enough to feel live (the daemon answers
 * in about 20 ms at the median at 10,000 notes, bench/search_latency.py), long enough that a word typed at speed
 * sends one request, not one per letter.
 */
export const TYPING_PAUSE_MS = 120;

/** What a superseded query answers: nothing of its own (a newer query's answer takes its place). */
const SUPERSEDED = Symbol("superseded");
type Answer = SearchHit[] | typeof SUPERSEDED;

/**
 * A query box over GET /search that searches as the user types; choosing a result opens the note at
 * its heading. Each result is a note, shown with its best passage, the heading above it and why it
 * was found.
 *
 * Stale queries never reach the screen: a query is sent only once typing pauses, a query typed over
 * before it was sent is never sent, and the answer to one overtaken while in flight is dropped in
 * favour of the newest one's (requestUrl cannot abort a request already sent).
 */
export class IdeaSearchModal extends SuggestModal<SearchHit> {
	private generation = 0;
	private newest: Promise<Answer> = Promise.resolve([]);
	private pendingPause: { handle: number; cancel: () => void } | null = null;

	constructor(
		app: App,
		private readonly api: Pick<ApiClient, "search">,
		private readonly timers: Timers,
	) {
		super(app);
		this.setPlaceholder("Search your notes by meaning…");
		this.emptyStateText = "Type a few words.";
		this.modalEl.classList.add("ideaweave-search-modal");
	}

	async getSuggestions(query: string): Promise<SearchHit[]> {
		const answer = this.ask(query.trim(), ++this.generation);
		this.newest = answer;
		let result = await answer;
		// Overtaken: show what the newest query finds instead (which may itself be overtaken meanwhile).
		while (result === SUPERSEDED) result = await this.newest;
		return result;
	}

	onClose(): void {
		this.generation += 1; // whatever is waiting or in flight is stale now
		this.cancelPause();
		super.onClose();
	}

	private async ask(query: string, generation: number): Promise<Answer> {
		this.cancelPause();
		if (query.length < MIN_QUERY_LENGTH) {
			this.emptyStateText = "Type a few words.";
			return [];
		}
		if (!(await this.typingPaused()) || generation !== this.generation) return SUPERSEDED;
		try {
			const hits = await this.api.search(query, RESULT_COUNT);
			if (generation !== this.generation) return SUPERSEDED;
			this.emptyStateText = "No matching notes.";
			return hits;
		} catch (err) {
			if (generation !== this.generation) return SUPERSEDED;
			this.emptyStateText = searchFailureText(asApiError(err).failure);
			return [];
		}
	}

	/** True once typing has paused for TYPING_PAUSE_MS; false if another keystroke came first. */
	private typingPaused(): Promise<boolean> {
		return new Promise((resolve) => {
			const handle = this.timers.setTimeout(() => {
				this.pendingPause = null;
				resolve(true);
			}, TYPING_PAUSE_MS);
			this.pendingPause = { handle, cancel: () => resolve(false) };
		});
	}

	private cancelPause(): void {
		if (this.pendingPause === null) return;
		this.timers.clearTimeout(this.pendingPause.handle);
		this.pendingPause.cancel();
		this.pendingPause = null;
	}

	renderSuggestion(hit: SearchHit, el: HTMLElement): void {
		renderHit(hit, el);
	}

	onChooseSuggestion(hit: SearchHit): void {
		openHit(this.app, hit);
	}
}

/**
 * "What else have I written about this?": the notes the daemon finds for a passage (a selection, or the
 * section the cursor is in), without the note it comes from. Typing filters them by title and passage.
 */
export class PassageResultsModal extends SuggestModal<SearchHit> {
	private readonly answer: Promise<SearchHit[]>;

	constructor(
		app: App,
		api: Pick<ApiClient, "searchByPassage">,
		request: PassageSearch,
	) {
		super(app);
		this.setPlaceholder("Other notes about this passage; type to filter…");
		this.emptyStateText = "Looking…";
		this.modalEl.classList.add("ideaweave-search-modal", "ideaweave-more-like-this");
		this.answer = api.searchByPassage(request, RESULT_COUNT).then(
			(hits) => {
				this.emptyStateText = "No other note is about this.";
				return hits;
			},
			(err) => {
				this.emptyStateText = passageFailureText(asApiError(err).failure);
				return [];
			},
		);
	}

	onOpen(): void {
		void super.onOpen();
		// Show the answer without waiting for a keystroke.
		const view = this.inputEl.ownerDocument.defaultView;
		if (view) this.inputEl.dispatchEvent(new view.Event("input"));
	}

	async getSuggestions(query: string): Promise<SearchHit[]> {
		const words = query.toLowerCase().split(/\s+/).filter((w) => w.length > 0);
		const hits = await this.answer;
		return hits.filter((hit) => {
			const text = `${hit.title} ${hit.path} ${hit.heading ?? ""} ${hit.passage}`.toLowerCase();
			return words.every((w) => text.includes(w));
		});
	}

	renderSuggestion(hit: SearchHit, el: HTMLElement): void {
		renderHit(hit, el);
	}

	onChooseSuggestion(hit: SearchHit): void {
		openHit(this.app, hit);
	}
}

/** One result: the note's title and score, the heading of its best passage, the passage, and why. */
export function renderHit(hit: SearchHit, el: HTMLElement): void {
	el.classList.add("ideaweave-hit");
	const top = child(el, "div", "ideaweave-idea-top");
	child(top, "span", "ideaweave-idea-title", hit.title);
	child(top, "span", "ideaweave-score", formatScore(hit.score));
	if (hit.heading) child(el, "div", "ideaweave-idea-heading", hit.heading);
	if (hit.passage) child(el, "div", "ideaweave-hit-passage", hit.passage);
	if (hit.why) child(el, "div", "ideaweave-why", hit.why);
}

function openHit(app: App, hit: SearchHit): void {
	const source = app.workspace.getActiveFile()?.path ?? "";
	void app.workspace.openLinkText(linktextForHit(hit), source);
}

function searchFailureText(failure: string): string {
	switch (failure) {
		case "unreachable":
			return "The ideaweave daemon is not running (start it with `ideaweave watch`).";
		case "unauthorized":
			return "The daemon refused the token: check the plugin settings.";
		case "not-ready":
			return "The index is still being built.";
		default:
			return "The search failed; see the daemon's log.";
	}
}

function passageFailureText(failure: string): string {
	return failure === "not-found"
		? "The daemon has not indexed this note (or this heading) yet."
		: searchFailureText(failure);
}

/**
 * What "What else have I written about this?" asks: the selection (its note left out of the answer),
 * or with nothing selected the section of `note` the cursor is on (`line`, 0-based), or the whole note
 * above its first heading.
 */
export function passageRequest(
	selection: string,
	note: string | null,
	lines: () => readonly string[],
	line: number,
): PassageSearch {
	const where = note === null ? {} : { note };
	if (selection.trim()) return { ...where, passage: selection };
	const heading = headingAt(lines(), line);
	return heading === null ? where : { ...where, heading };
}

/**
 * The heading of the section that `line` (0-based) sits in, or null above the first heading. Lines in
 * code fences and in the frontmatter are not headings.
 */
export function headingAt(lines: readonly string[], line: number): string | null {
	let heading: string | null = null;
	let fence: string | null = null;
	const start = lines[0]?.trim() === "---" ? frontmatterEnd(lines) : 0;
	for (let i = start; i <= Math.min(line, lines.length - 1); i++) {
		const text = lines[i];
		const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(text);
		if (marker) {
			if (fence === null) fence = marker[1][0];
			else if (marker[1][0] === fence) fence = null;
			continue;
		}
		const found = fence === null ? /^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$/.exec(text) : null;
		if (found) heading = found[1];
	}
	return heading;
}

function frontmatterEnd(lines: readonly string[]): number {
	for (let i = 1; i < lines.length; i++) if (/^(---|\.\.\.)\s*$/.test(lines[i])) return i + 1;
	return 0;
}
