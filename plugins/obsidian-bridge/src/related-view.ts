import { ItemView, Keymap, WorkspaceLeaf } from "obsidian";
import { ApiClient, asApiError } from "./api-client";
import { FeedbackAction, RelatedIdea } from "./contract";
import { DaemonState } from "./daemon-state";
import {
	RelatedActions,
	RelatedPanel,
	ideasAfterFeedback,
	linktextForIdea,
	panelForDaemonState,
	panelForFailure,
	renderRelatedPanel,
} from "./related-render";

export const RELATED_VIEW_TYPE = "ideaweave-related";

/** What the view needs from the plugin. */
export interface RelatedViewHost {
	readonly api: Pick<ApiClient, "related" | "feedback">;
	daemonState(): DaemonState;
	address(): string;
	relatedCount(): number;
	notify(message: string): void;
}

/** The side view listing the ideas related to the active note. */
export class RelatedIdeasView extends ItemView {
	private note: string | null = null;
	private panel: RelatedPanel = { kind: "no-note" };
	private renderedKey = "";
	// Each refresh takes a number; an answer for an older number is dropped, so
	// switching notes quickly never shows the previous note's ideas.
	private generation = 0;
	private readonly actions: RelatedActions = {
		open: (idea, event) => this.openIdea(idea, event),
		hover: (idea, event, target) => this.previewIdea(idea, event, target),
		feedback: (idea, action) => void this.sendFeedback(idea, action),
	};

	constructor(
		leaf: WorkspaceLeaf,
		private readonly host: RelatedViewHost,
	) {
		super(leaf);
	}

	getViewType(): string {
		return RELATED_VIEW_TYPE;
	}

	getDisplayText(): string {
		return "Related ideas";
	}

	getIcon(): string {
		return "lightbulb";
	}

	async onOpen(): Promise<void> {
		this.addAction("refresh-cw", "Refresh", () => void this.refresh());
		await this.refresh();
	}

	async onClose(): Promise<void> {
		this.generation += 1;
	}

	/** Shows the ideas for the active note, asking the daemon unless it is known to be down. */
	async refresh(): Promise<void> {
		const generation = ++this.generation;
		const file = this.app.workspace.getActiveFile();
		if (!file || file.extension !== "md") {
			this.note = null;
			this.show({ kind: "no-note" });
			return;
		}
		const noteChanged = file.path !== this.note;
		this.note = file.path;
		const blocked = panelForDaemonState(this.host.daemonState(), this.host.address());
		if (blocked) {
			this.show(blocked);
			return;
		}
		// Only a new note shows "loading": a background refresh keeps the old list until the new one arrives.
		if (noteChanged) this.show({ kind: "loading", noteTitle: file.basename });
		const panel = await this.ask(file.path, file.basename);
		if (generation === this.generation) this.show(panel);
	}

	private async ask(path: string, title: string): Promise<RelatedPanel> {
		try {
			const ideas = await this.host.api.related(path, this.host.relatedCount());
			return { kind: "ideas", noteTitle: title, ideas };
		} catch (err) {
			return panelForFailure(asApiError(err), title, this.host.address());
		}
	}

	private show(panel: RelatedPanel): void {
		this.panel = panel;
		// Identical answers are frequent (a refresh per poll while indexing); redrawing would lose the scroll position.
		const key = JSON.stringify(panel);
		if (key === this.renderedKey) return;
		this.renderedKey = key;
		renderRelatedPanel(this.contentEl, panel, this.actions);
	}

	private openIdea(idea: RelatedIdea, event: MouseEvent): void {
		void this.app.workspace.openLinkText(linktextForIdea(idea), this.note ?? "", Keymap.isModEvent(event));
	}

	private previewIdea(idea: RelatedIdea, event: MouseEvent, target: HTMLElement): void {
		this.app.workspace.trigger("hover-link", {
			event,
			source: RELATED_VIEW_TYPE,
			hoverParent: this,
			targetEl: target,
			linktext: linktextForIdea(idea),
			sourcePath: this.note ?? "",
		});
	}

	private async sendFeedback(idea: RelatedIdea, action: FeedbackAction): Promise<void> {
		const note = this.note;
		if (note === null) return;
		try {
			await this.host.api.feedback({ note, target: idea.path, action });
		} catch (err) {
			this.host.notify(`ideaweave: the feedback was not saved (${asApiError(err).message})`);
			return;
		}
		// Show the outcome at once; the refresh then brings the daemon's own list.
		if (this.panel.kind === "ideas" && this.note === note) {
			this.show({ ...this.panel, ideas: ideasAfterFeedback(this.panel.ideas, idea.path, action) });
		}
		await this.refresh();
	}
}
