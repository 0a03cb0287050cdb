// The idea map view: the daemon's map page (GET /map, the page `ideaweave map --html` writes) in a sandboxed
// frame. The page runs its own script but gets no access to Obsidian, the vault or the network (its own
// content security policy forbids every request); a click on a note asks this view, by message, to open it.

import { ItemView, WorkspaceLeaf } from "obsidian";
import { asApiError } from "./api-client";
import { linktextFor } from "./contract";
import { DaemonState } from "./daemon-state";
import { IdeaMapApi } from "./idea-map-api";
import { messageFor } from "./idea-map-views";
import { child } from "./related-render";

export const MAP_VIEW_TYPE = "ideaweave-map";
/** What the page posts when a note is clicked (daemon/ideaweave/mapview/map.js). */
export const OPEN_MESSAGE = "ideaweave-map:open";

export interface MapViewHost {
	readonly ideaMap: Pick<IdeaMapApi, "mapPage">;
	daemonState(): DaemonState;
}

/** The path a message from the map asks to open, or null for any other message. */
export function pathToOpen(data: unknown): string | null {
	if (typeof data !== "object" || data === null) return null;
	const { type, path } = data as { type?: unknown; path?: unknown };
	return type === OPEN_MESSAGE && typeof path === "string" && path.endsWith(".md") ? path : null;
}

export class IdeaMapView extends ItemView {
	private frame: HTMLIFrameElement | null = null;
	private generation = 0;
	private readonly onMessage = (event: MessageEvent) => {
		// Only the map this view shows may ask: any other frame or window is ignored.
		if (!this.frame || event.source !== this.frame.contentWindow) return;
		const path = pathToOpen(event.data);
		if (path) void this.app.workspace.openLinkText(linktextFor(path, null), "", false);
	};

	constructor(
		leaf: WorkspaceLeaf,
		private readonly host: MapViewHost,
	) {
		super(leaf);
	}

	getViewType(): string {
		return MAP_VIEW_TYPE;
	}

	getDisplayText(): string {
		return "Idea map";
	}

	getIcon(): string {
		return "map";
	}

	async onOpen(): Promise<void> {
		this.addAction("refresh-cw", "Draw the map again", () => void this.refresh());
		this.contentEl.ownerDocument.defaultView?.addEventListener("message", this.onMessage);
		await this.refresh();
	}

	async onClose(): Promise<void> {
		this.generation += 1;
		this.contentEl.ownerDocument.defaultView?.removeEventListener("message", this.onMessage);
	}

	async refresh(): Promise<void> {
		const generation = ++this.generation;
		const blocked = messageFor(this.host.daemonState(), null, "The vault");
		if (blocked) return this.say(blocked);
		this.say("Drawing the map…");
		try {
			const page = await this.host.ideaMap.mapPage();
			if (generation === this.generation) this.show(page);
		} catch (err) {
			if (generation === this.generation) this.say(messageFor(null, asApiError(err), "The vault") ?? "");
		}
	}

	private show(page: string): void {
		this.contentEl.replaceChildren();
		this.contentEl.classList.add("ideaweave-map");
		const frame = this.contentEl.ownerDocument.createElement("iframe");
		frame.className = "ideaweave-map-frame";
		frame.setAttribute("sandbox", "allow-scripts"); // scripts, but no same origin: no reach into Obsidian
		frame.setAttribute("title", "Idea map");
		frame.style.cssText = "width: 100%; height: 100%; border: 0;";
		frame.srcdoc = page;
		this.contentEl.appendChild(frame);
		this.frame = frame;
	}

	private say(message: string): void {
		this.frame = null;
		this.contentEl.replaceChildren();
		child(this.contentEl, "div", "ideaweave-message-line", message);
	}
}
