// Pure rendering for the Related ideas view: a panel value says what to show,
// and renderRelatedPanel turns it into DOM. Text always goes in as text, never
// as HTML: passages are note content and may contain anything.

import { ApiError } from "./api-client";
import { FeedbackAction, RelatedIdea, SearchHit, linktextFor, linktextFromWikilink } from "./contract";
import { DaemonState } from "./daemon-state";

export type RelatedPanel =
	| { kind: "no-note" }
	| { kind: "loading"; noteTitle: string }
	| { kind: "daemon-down"; address: string }
	| { kind: "unauthorized" }
	| { kind: "not-indexed"; noteTitle: string }
	| { kind: "not-ready"; message: string }
	| { kind: "error"; message: string }
	| { kind: "ideas"; noteTitle: string; ideas: RelatedIdea[] };

export interface RelatedActions {
	open(idea: RelatedIdea, event: MouseEvent): void;
	hover(idea: RelatedIdea, event: MouseEvent, target: HTMLElement): void;
	feedback(idea: RelatedIdea, action: FeedbackAction): void;
}

/** The panel to show instead of asking the daemon, or null when it is worth asking. */
export function panelForDaemonState(state: DaemonState, address: string): RelatedPanel | null {
	switch (state.kind) {
		case "down":
			return { kind: "daemon-down", address };
		case "unauthorized":
			return { kind: "unauthorized" };
		default:
			return null;
	}
}

export function panelForFailure(error: ApiError, noteTitle: string, address: string): RelatedPanel {
	switch (error.failure) {
		case "unreachable":
			return { kind: "daemon-down", address };
		case "unauthorized":
			return { kind: "unauthorized" };
		case "not-found":
			return { kind: "not-indexed", noteTitle };
		case "not-ready":
			return { kind: "not-ready", message: error.message };
		default:
			return { kind: "error", message: error.message };
	}
}

/** The list as it stands after the user's feedback, before the daemon's next answer. */
export function ideasAfterFeedback(ideas: RelatedIdea[], target: string, action: FeedbackAction): RelatedIdea[] {
	if (action === "reject") return ideas.filter((idea) => idea.path !== target);
	return ideas.map((idea) => (idea.path === target ? { ...idea, pinned: action === "pin" } : idea));
}

export function formatScore(score: number): string {
	return score.toFixed(2);
}

/** What to hand to `openLinkText` so the note opens at the matching heading. */
export function linktextForIdea(idea: RelatedIdea): string {
	return linktextFromWikilink(idea.link) ?? linktextFor(idea.path, idea.heading);
}

export function linktextForHit(hit: SearchHit): string {
	return linktextFor(hit.path, hit.heading);
}

export function renderRelatedPanel(root: HTMLElement, panel: RelatedPanel, actions: RelatedActions): void {
	root.replaceChildren();
	root.classList.add("ideaweave-related");
	if (panel.kind === "ideas") {
		renderIdeas(root, panel.noteTitle, panel.ideas, actions);
	} else {
		renderMessage(root, panel);
	}
}

type MessagePanel = Exclude<RelatedPanel, { kind: "ideas" }>;

interface Message {
	title: string;
	lines: string[];
	command?: string;
	footnote?: string;
}

function messageFor(panel: MessagePanel): Message {
	switch (panel.kind) {
		case "no-note":
			return { title: "No note open", lines: ["Open a note to see the ideas related to it."] };
		case "loading":
			return { title: `Finding ideas related to ${panel.noteTitle}…`, lines: [] };
		case "daemon-down":
			return {
				title: "The ideaweave daemon is not running",
				lines: ["Start it in a terminal, from the vault folder:"],
				command: "ideaweave watch",
				footnote: `This view updates by itself once the daemon answers at ${panel.address}.`,
			};
		case "unauthorized":
			return {
				title: "The daemon refused the token",
				lines: ["Print the token with the command below and paste it into the plugin settings."],
				command: "ideaweave token",
			};
		case "not-indexed":
			return {
				title: `${panel.noteTitle} is not indexed yet`,
				lines: ["New and changed notes are indexed within seconds; notes in excluded folders never are."],
			};
		case "not-ready":
			return { title: "The index is still being built", lines: [panel.message] };
		case "error":
			return { title: "The daemon answered with an error", lines: [panel.message] };
	}
}

function renderMessage(root: HTMLElement, panel: MessagePanel): void {
	const message = messageFor(panel);
	const box = child(root, "div", `ideaweave-message ideaweave-message-${panel.kind}`);
	child(box, "div", "ideaweave-message-title", message.title);
	for (const line of message.lines) child(box, "p", "ideaweave-message-line", line);
	if (message.command) child(child(box, "pre", "ideaweave-command"), "code", undefined, message.command);
	if (message.footnote) child(box, "p", "ideaweave-message-footnote", message.footnote);
}

function renderIdeas(root: HTMLElement, noteTitle: string, ideas: RelatedIdea[], actions: RelatedActions): void {
	const header = child(root, "div", "ideaweave-related-header");
	child(header, "span", "ideaweave-related-label", "Related to");
	child(header, "span", "ideaweave-related-note", noteTitle);
	if (ideas.length === 0) {
		child(root, "p", "ideaweave-message-line", "No related ideas yet.");
		return;
	}
	const list = child(root, "ol", "ideaweave-ideas");
	for (const idea of ideas) renderIdea(list, idea, actions);
}

function renderIdea(list: HTMLElement, idea: RelatedIdea, actions: RelatedActions): void {
	const item = child(list, "li", idea.pinned ? "ideaweave-idea is-pinned" : "ideaweave-idea");
	item.dataset.path = idea.path;

	const top = child(item, "div", "ideaweave-idea-top");
	const title = child(top, "a", "ideaweave-idea-title internal-link", idea.title);
	title.dataset.href = linktextForIdea(idea);
	title.setAttribute("href", "#");
	title.addEventListener("click", (event) => {
		event.preventDefault();
		actions.open(idea, event);
	});
	title.addEventListener("mouseover", (event) => actions.hover(idea, event, title));
	const score = child(top, "span", "ideaweave-score", formatScore(idea.score));
	score.setAttribute("aria-label", "Similarity score");
	score.style.setProperty("--ideaweave-score", String(Math.max(0, Math.min(1, idea.score))));

	if (idea.heading) child(item, "div", "ideaweave-idea-heading", idea.heading);
	if (idea.passage) child(item, "blockquote", "ideaweave-passage", idea.passage);
	if (idea.why) child(item, "div", "ideaweave-why", idea.why);

	const buttons = child(item, "div", "ideaweave-idea-actions");
	const pinAction: FeedbackAction = idea.pinned ? "clear" : "pin";
	button(buttons, idea.pinned ? "Unpin" : "Pin", "ideaweave-pin", () => actions.feedback(idea, pinAction));
	button(buttons, "Not related", "ideaweave-reject", () => actions.feedback(idea, "reject"));
}

function button(parent: HTMLElement, label: string, cls: string, onClick: () => void): HTMLButtonElement {
	const el = child(parent, "button", cls, label);
	el.setAttribute("type", "button");
	el.addEventListener("click", (event) => {
		event.preventDefault();
		onClick();
	});
	return el;
}

/** Creates an element in the parent's own document (Obsidian's pop-out windows each have one). */
export function child<K extends keyof HTMLElementTagNameMap>(
	parent: HTMLElement,
	tag: K,
	cls?: string,
	text?: string,
): HTMLElementTagNameMap[K] {
	const el = parent.ownerDocument.createElement(tag);
	if (cls) el.className = cls;
	if (text !== undefined) el.textContent = text;
	parent.appendChild(el);
	return el;
}
