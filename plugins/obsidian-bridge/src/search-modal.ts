import { App, SuggestModal } from "obsidian";
import { ApiClient, asApiError } from "./api-client";
import { SearchHit } from "./contract";
import { child, formatScore, linktextForHit } from "./related-render";

const MIN_QUERY_LENGTH = 2;
const RESULT_COUNT = 20;

/** A query box over GET /search; choosing a result opens the note at its heading. */
export class IdeaSearchModal extends SuggestModal<SearchHit> {
	constructor(
		app: App,
		private readonly api: Pick<ApiClient, "search">,
	) {
		super(app);
		this.setPlaceholder("Search your notes by meaning…");
		this.emptyStateText = "Type a few words.";
		this.modalEl.classList.add("ideaweave-search-modal");
	}

	async getSuggestions(query: string): Promise<SearchHit[]> {
		const trimmed = query.trim();
		if (trimmed.length < MIN_QUERY_LENGTH) {
			this.emptyStateText = "Type a few words.";
			return [];
		}
		try {
			const hits = await this.api.search(trimmed, RESULT_COUNT);
			this.emptyStateText = "No matching notes.";
			return hits;
		} catch (err) {
			this.emptyStateText = searchFailureText(asApiError(err).failure);
			return [];
		}
	}

	renderSuggestion(hit: SearchHit, el: HTMLElement): void {
		el.classList.add("ideaweave-hit");
		const top = child(el, "div", "ideaweave-idea-top");
		child(top, "span", "ideaweave-idea-title", hit.title);
		child(top, "span", "ideaweave-score", formatScore(hit.score));
		if (hit.heading) child(el, "div", "ideaweave-idea-heading", hit.heading);
		if (hit.passage) child(el, "div", "ideaweave-hit-passage", hit.passage);
	}

	onChooseSuggestion(hit: SearchHit): void {
		const source = this.app.workspace.getActiveFile()?.path ?? "";
		void this.app.workspace.openLinkText(linktextForHit(hit), source);
	}
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
