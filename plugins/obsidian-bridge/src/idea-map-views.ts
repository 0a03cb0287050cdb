// Two side views over the idea map: "Topic" (where the active note sits among the vault's topics: its broad and
// its fine topic, their most central notes, the topics next to them) and "Duplicates" (pairs of notes that say
// the same thing, both passages side by side, each pair dismissible as "not duplicates"). Text always goes in
// as text, never as HTML: names, descriptions and passages come from notes.

import { ItemView, Keymap, WorkspaceLeaf } from "obsidian";
import { ApiError, asApiError } from "./api-client";
import { linktextFor } from "./contract";
import { DaemonState } from "./daemon-state";
import { Duplicate, IdeaMapApi, NoteTopics, Passage, Topic } from "./idea-map-api";
import { child } from "./related-render";

export const TOPICS_VIEW_TYPE = "ideaweave-topics";
export const DUPLICATES_VIEW_TYPE = "ideaweave-duplicates";

const CENTRAL_NOTES_SHOWN = 5;
const DUPLICATES_ASKED = 30;

/** What the views need from the plugin. */
export interface IdeaMapHost {
	readonly ideaMap: Pick<IdeaMapApi, "noteTopics" | "duplicates" | "markNotDuplicates">;
	daemonState(): DaemonState;
	notify(message: string): void;
}

/** A line to show instead of the answer: the daemon is down, refused the token, or does not know the note. */
export function messageFor(state: DaemonState | null, error: ApiError | null, what: string): string | null {
	if (state?.kind === "down" || error?.failure === "unreachable") return "The ideaweave daemon is not running: start it with `ideaweave watch`.";
	if (state?.kind === "unauthorized" || error?.failure === "unauthorized") return "The daemon refused the token: paste the one `ideaweave token` prints into the settings.";
	if (error?.failure === "not-found") return `${what} is not indexed yet.`;
	if (error?.failure === "not-ready") return `The index is still being built (${error.message}).`;
	if (error) return `The daemon answered with an error: ${error.message}`;
	return null;
}

function noteName(path: string): string {
	return (path.split("/").pop() ?? path).replace(/\.md$/, "");
}

function link(parent: HTMLElement, cls: string, label: string, onOpen: (event: MouseEvent) => void): HTMLElement {
	const el = child(parent, "a", `${cls} internal-link`, label);
	el.setAttribute("href", "#");
	el.addEventListener("click", (event) => {
		event.preventDefault();
		onOpen(event);
	});
	return el;
}

// ------------------------------------------------------------------ rendering (pure DOM)

export function renderNoteTopics(root: HTMLElement, answer: NoteTopics, open: (path: string, event: MouseEvent) => void): void {
	root.replaceChildren();
	root.classList.add("ideaweave-related", "ideaweave-topics");
	for (const topic of answer.topics) renderTopic(root, topic, open, topic.level === 0 ? "Broad topic" : "Topic");
	if (answer.neighbours.length) {
		child(root, "div", "ideaweave-related-label", "Next to it");
		const list = child(root, "ul", "ideaweave-topic-neighbours");
		for (const topic of answer.neighbours) {
			const item = child(list, "li", "ideaweave-topic-neighbour");
			item.dataset.id = topic.id;
			const target = topic.central ?? topic.notes[0];
			link(item, "ideaweave-topic-neighbour-name", topic.name, (event) => open(target, event));
			child(item, "span", "ideaweave-why", ` ${topic.notes.length} notes`);
		}
	}
}

function renderTopic(root: HTMLElement, topic: Topic, open: (path: string, event: MouseEvent) => void, label: string): void {
	const box = child(root, "div", `ideaweave-topic ideaweave-topic-level-${topic.level}`);
	box.dataset.id = topic.id;
	const header = child(box, "div", "ideaweave-related-header");
	child(header, "span", "ideaweave-related-label", label);
	child(header, "span", "ideaweave-topic-name ideaweave-related-note", topic.name);
	if (topic.description) child(box, "blockquote", "ideaweave-passage ideaweave-topic-description", topic.description);
	const list = child(box, "ol", "ideaweave-topic-notes");
	for (const path of topic.notes.slice(0, CENTRAL_NOTES_SHOWN)) {
		link(child(list, "li", "ideaweave-topic-note"), "ideaweave-idea-title", noteName(path), (event) => open(path, event));
	}
	if (topic.notes.length > CENTRAL_NOTES_SHOWN) child(box, "div", "ideaweave-why", `and ${topic.notes.length - CENTRAL_NOTES_SHOWN} more notes`);
}

export interface DuplicateActions {
	open(passage: Passage, event: MouseEvent): void;
	dismiss(duplicate: Duplicate): void;
}

export function renderDuplicates(root: HTMLElement, duplicates: Duplicate[], actions: DuplicateActions): void {
	root.replaceChildren();
	root.classList.add("ideaweave-related", "ideaweave-duplicates");
	if (duplicates.length === 0) {
		child(root, "p", "ideaweave-message-line", "No two notes say the same thing.");
		return;
	}
	const list = child(root, "ol", "ideaweave-ideas");
	for (const duplicate of duplicates) {
		const item = child(list, "li", "ideaweave-idea ideaweave-duplicate");
		item.dataset.pair = `${duplicate.a.path}\n${duplicate.b.path}`;
		const top = child(item, "div", "ideaweave-idea-top");
		child(top, "span", "ideaweave-score", duplicate.similarity.toFixed(2)).setAttribute("aria-label", "Similarity");
		child(top, "span", "ideaweave-why", `closeness ${duplicate.closeness.toFixed(1)}`);
		for (const side of [duplicate.a, duplicate.b]) {
			const title = side.heading ? `${noteName(side.path)} › ${side.heading}` : noteName(side.path);
			link(item, "ideaweave-idea-title ideaweave-duplicate-side", title, (event) => actions.open(side, event));
			child(item, "blockquote", "ideaweave-passage", side.passage);
		}
		const buttons = child(item, "div", "ideaweave-idea-actions");
		const dismiss = child(buttons, "button", "ideaweave-not-duplicates", "Not duplicates");
		dismiss.setAttribute("type", "button");
		dismiss.addEventListener("click", (event) => {
			event.preventDefault();
			actions.dismiss(duplicate);
		});
	}
}

function renderMessage(root: HTMLElement, message: string): void {
	root.replaceChildren();
	root.classList.add("ideaweave-related");
	child(child(root, "div", "ideaweave-message"), "p", "ideaweave-message-line", message);
}

// ------------------------------------------------------------------ the views

/** The active note's place among the vault's topics. */
export class NoteTopicsView extends ItemView {
	private generation = 0;

	constructor(
		leaf: WorkspaceLeaf,
		private readonly host: IdeaMapHost,
	) {
		super(leaf);
	}

	getViewType(): string {
		return TOPICS_VIEW_TYPE;
	}

	getDisplayText(): string {
		return "Topic";
	}

	getIcon(): string {
		return "network";
	}

	async onOpen(): Promise<void> {
		this.addAction("refresh-cw", "Refresh", () => void this.refresh());
		await this.refresh();
	}

	async onClose(): Promise<void> {
		this.generation += 1;
	}

	async refresh(): Promise<void> {
		const generation = ++this.generation;
		const file = this.app.workspace.getActiveFile();
		if (!file || file.extension !== "md") return renderMessage(this.contentEl, "Open a note to see its topic.");
		const blocked = messageFor(this.host.daemonState(), null, file.basename);
		if (blocked) return renderMessage(this.contentEl, blocked);
		try {
			const answer = await this.host.ideaMap.noteTopics(file.path);
			if (generation !== this.generation) return;
			renderNoteTopics(this.contentEl, answer, (path, event) => this.open(path, file.path, event));
		} catch (err) {
			if (generation === this.generation) renderMessage(this.contentEl, messageFor(null, asApiError(err), file.basename) ?? "");
		}
	}

	private open(path: string, from: string, event: MouseEvent): void {
		void this.app.workspace.openLinkText(linktextFor(path, null), from, Keymap.isModEvent(event));
	}
}

/** The vault's duplicate pairs, most similar first. */
export class DuplicatesView extends ItemView {
	private shown: Duplicate[] = [];
	private generation = 0;

	constructor(
		leaf: WorkspaceLeaf,
		private readonly host: IdeaMapHost,
	) {
		super(leaf);
	}

	getViewType(): string {
		return DUPLICATES_VIEW_TYPE;
	}

	getDisplayText(): string {
		return "Duplicates";
	}

	getIcon(): string {
		return "copy";
	}

	async onOpen(): Promise<void> {
		this.addAction("refresh-cw", "Refresh", () => void this.refresh());
		await this.refresh();
	}

	async onClose(): Promise<void> {
		this.generation += 1;
	}

	async refresh(): Promise<void> {
		const generation = ++this.generation;
		const blocked = messageFor(this.host.daemonState(), null, "The vault");
		if (blocked) return renderMessage(this.contentEl, blocked);
		try {
			const found = await this.host.ideaMap.duplicates(DUPLICATES_ASKED);
			if (generation === this.generation) this.show(found);
		} catch (err) {
			if (generation === this.generation) renderMessage(this.contentEl, messageFor(null, asApiError(err), "The vault") ?? "");
		}
	}

	private show(duplicates: Duplicate[]): void {
		this.shown = duplicates;
		renderDuplicates(this.contentEl, duplicates, {
			open: (side, event) => void this.app.workspace.openLinkText(linktextFor(side.path, side.heading), "", Keymap.isModEvent(event)),
			dismiss: (duplicate) => void this.dismiss(duplicate),
		});
	}

	private async dismiss(duplicate: Duplicate): Promise<void> {
		try {
			await this.host.ideaMap.markNotDuplicates(duplicate.a.path, duplicate.b.path);
		} catch (err) {
			this.host.notify(`ideaweave: the pair was not marked (${asApiError(err).message})`);
			return;
		}
		this.show(this.shown.filter((d) => d !== duplicate));
	}
}
