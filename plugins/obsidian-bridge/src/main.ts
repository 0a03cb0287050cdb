import { Editor, Notice, Plugin, WorkspaceLeaf } from "obsidian";
import { ApiClient, FetchLike, asApiError, normalizeAddress } from "./api-client";
import { DaemonPoller, Logger } from "./daemon-poller";
import { DaemonState, statusBarText, statusBarTooltip } from "./daemon-state";
import { IdeaMapApi } from "./idea-map-api";
import { DUPLICATES_VIEW_TYPE, DuplicatesView, IdeaMapHost, NoteTopicsView, TOPICS_VIEW_TYPE } from "./idea-map-views";
import { IdeaMapView, MAP_VIEW_TYPE, MapViewHost } from "./map-view";
import { RELATED_VIEW_TYPE, RelatedIdeasView, RelatedViewHost } from "./related-view";
import { requestUrlFetch } from "./request-url-fetch";
import { IdeaSearchModal, PassageResultsModal, passageRequest } from "./search-modal";
import { BridgeSettingTab, BridgeSettings, DEFAULT_SETTINGS, SettingsHost, connectionTestResult, parseStoredData } from "./settings";
import { Debounced, Timers, debounced, windowTimers } from "./timers";
import { VaultFrontmatter } from "./vault-frontmatter";
import { AppliedWriteIds, WriteHandoff } from "./write-handoff";

/** The plugin's ties to the outside world; tests swap them before `onload`. */
export interface BridgeEnvironment {
	fetch: FetchLike;
	timers: Timers;
	log: Logger;
}

const VIEW_REFRESH_DELAY_MS = 250;
const SETTINGS_POLL_DELAY_MS = 500;

export default class IdeaweaveBridgePlugin extends Plugin implements SettingsHost, RelatedViewHost, IdeaMapHost, MapViewHost {
	settings: BridgeSettings = { ...DEFAULT_SETTINGS };
	environment: BridgeEnvironment = { fetch: requestUrlFetch(), timers: windowTimers, log: console };
	api!: ApiClient;
	ideaMap!: IdeaMapApi;
	poller!: DaemonPoller;
	private appliedIds = new AppliedWriteIds();
	private handoff!: WriteHandoff;
	private statusBarEl: HTMLElement | null = null;
	private refreshViewsSoon: Debounced | null = null;
	private pollSoon: Debounced | null = null;

	async onload(): Promise<void> {
		const stored = parseStoredData(await this.loadData());
		this.settings = stored.settings;
		this.appliedIds = new AppliedWriteIds(stored.appliedWriteIds);
		const { fetch, timers, log } = this.environment;
		this.api = new ApiClient(() => this.settings, fetch);
		this.ideaMap = new IdeaMapApi(() => this.settings, fetch);
		this.handoff = new WriteHandoff(this.api, new VaultFrontmatter(this.app), this.appliedIds, () => this.persist());
		this.poller = new DaemonPoller(
			{
				status: () => this.api.status(),
				whileUp: () => this.handOffWrites(),
				onState: (state, changed) => this.onDaemonState(state, changed),
				address: () => this.address(),
			},
			timers,
			log,
		);
		// Switching notes fires several workspace events in a row; one request answers them all.
		this.refreshViewsSoon = debounced(timers, VIEW_REFRESH_DELAY_MS, () => this.refreshViews());
		this.pollSoon = debounced(timers, SETTINGS_POLL_DELAY_MS, () => this.poller.pollNow());

		this.registerView(RELATED_VIEW_TYPE, (leaf) => new RelatedIdeasView(leaf, this));
		this.registerHoverLinkSource(RELATED_VIEW_TYPE, { display: "ideaweave bridge", defaultMod: true });
		this.addRibbonIcon("lightbulb", "Open related ideas", () => void this.openRelatedView());
		this.registerView(TOPICS_VIEW_TYPE, (leaf) => new NoteTopicsView(leaf, this));
		this.registerView(DUPLICATES_VIEW_TYPE, (leaf) => new DuplicatesView(leaf, this));
		this.addCommand({ id: "open-topic", name: "Open the active note's topic", callback: () => void this.openSideView(TOPICS_VIEW_TYPE) });
		this.addCommand({ id: "open-duplicates", name: "Open duplicate notes", callback: () => void this.openSideView(DUPLICATES_VIEW_TYPE) });
		this.registerView(MAP_VIEW_TYPE, (leaf) => new IdeaMapView(leaf, this));
		this.addCommand({ id: "open-map", name: "Open the idea map", callback: () => void this.openSideView(MAP_VIEW_TYPE) });
		this.addCommands();
		this.addStatusBar();
		this.addSettingTab(new BridgeSettingTab(this.app, this));
		this.registerEvent(this.app.workspace.on("active-leaf-change", () => this.refreshViewsSoon?.schedule()));
		this.registerEvent(this.app.workspace.on("file-open", () => this.refreshViewsSoon?.schedule()));
		this.app.workspace.onLayoutReady(() => this.poller.start());
	}

	onunload(): void {
		this.poller?.stop();
		this.refreshViewsSoon?.cancel();
		this.pollSoon?.cancel();
	}

	daemonState(): DaemonState {
		return this.poller.state;
	}

	address(): string {
		return normalizeAddress(this.settings.address);
	}

	relatedCount(): number {
		return this.settings.relatedCount;
	}

	notify(message: string): void {
		new Notice(message);
	}

	async saveSettings(): Promise<void> {
		await this.persist();
		this.pollSoon?.schedule();
		this.refreshViewsSoon?.schedule();
	}

	async testConnection(): Promise<string> {
		let outcome;
		try {
			outcome = await this.api.status();
		} catch (err) {
			outcome = asApiError(err);
		}
		this.poller.pollNow();
		return connectionTestResult(outcome, this.address());
	}

	async openRelatedView(): Promise<void> {
		const { workspace } = this.app;
		let leaf: WorkspaceLeaf | null = workspace.getLeavesOfType(RELATED_VIEW_TYPE)[0] ?? null;
		if (!leaf) {
			leaf = workspace.getRightLeaf(false);
			if (!leaf) return;
			await leaf.setViewState({ type: RELATED_VIEW_TYPE, active: true });
		}
		await workspace.revealLeaf(leaf);
	}

	/** Opens (or reveals) a view of the idea map in the right sidebar. */
	async openSideView(type: string): Promise<void> {
		const { workspace } = this.app;
		let leaf: WorkspaceLeaf | null = workspace.getLeavesOfType(type)[0] ?? null;
		if (!leaf) {
			leaf = workspace.getRightLeaf(false);
			if (!leaf) return;
			await leaf.setViewState({ type, active: true });
		}
		await workspace.revealLeaf(leaf);
	}

	refreshViews(): void {
		for (const leaf of this.app.workspace.getLeavesOfType(RELATED_VIEW_TYPE)) {
			if (leaf.view instanceof RelatedIdeasView) void leaf.view.refresh();
		}
		for (const leaf of this.app.workspace.getLeavesOfType(TOPICS_VIEW_TYPE)) {
			if (leaf.view instanceof NoteTopicsView) void leaf.view.refresh();
		}
	}

	private addCommands(): void {
		this.addCommand({
			id: "open-related-ideas",
			name: "Open related ideas",
			callback: () => void this.openRelatedView(),
		});
		this.addCommand({
			id: "search-ideas",
			name: "Search notes by meaning",
			callback: () => new IdeaSearchModal(this.app, this.api, this.environment.timers).open(),
		});
		this.addCommand({
			id: "more-like-this",
			name: "What else have I written about this?",
			editorCheckCallback: (checking, editor, ctx) => this.moreLikeThis(checking, editor, ctx.file?.path ?? null),
		});
		this.addCommand({
			id: "refresh-related-ideas",
			name: "Refresh related ideas",
			callback: () => this.refreshViews(),
		});
		this.addCommand({
			id: "pause-writing",
			name: "Pause writing into notes",
			checkCallback: (checking) => this.pauseCommand(checking, true),
		});
		this.addCommand({
			id: "resume-writing",
			name: "Resume writing into notes",
			checkCallback: (checking) => this.pauseCommand(checking, false),
		});
	}

	/**
	 * Other notes about the selection, or, with nothing selected, about the section the cursor is in
	 * (the whole note above its first heading). The note itself is never among them.
	 */
	private moreLikeThis(checking: boolean, editor: Editor, note: string | null): boolean {
		const selection = editor.getSelection();
		const source = note?.endsWith(".md") ? note : null;
		if (!selection.trim() && source === null) return false;
		if (checking) return true;
		const request = passageRequest(selection, source, () => editor.getValue().split("\n"), editor.getCursor().line);
		new PassageResultsModal(this.app, this.api, request).open();
		return true;
	}

	private pauseCommand(checking: boolean, pause: boolean): boolean {
		const state = this.poller.state;
		if (state.kind !== "up" || state.status.paused === pause) return false;
		if (checking) return true;
		const request = pause ? this.api.pause() : this.api.resume();
		request.then(
			() => this.poller.pollNow(),
			(err) => this.notify(`ideaweave: ${asApiError(err).message}`),
		);
		return true;
	}

	private addStatusBar(): void {
		const el = this.addStatusBarItem();
		el.classList.add("ideaweave-status", "mod-clickable");
		this.registerDomEvent(el, "click", () => void this.openRelatedView());
		this.statusBarEl = el;
		this.renderStatusBar(this.poller.state);
	}

	private renderStatusBar(state: DaemonState): void {
		const el = this.statusBarEl;
		if (!el) return;
		el.textContent = statusBarText(state);
		el.dataset.state = state.kind === "up" && state.status.paused ? "paused" : state.kind;
		el.setAttribute("aria-label", statusBarTooltip(state, this.address()));
		el.setAttribute("data-tooltip-position", "top");
	}

	private onDaemonState(state: DaemonState, changed: boolean): void {
		this.renderStatusBar(state);
		if (changed) this.refreshViewsSoon?.schedule();
	}

	private async handOffWrites(): Promise<void> {
		// Without polling /writes the daemon counts the bridge as gone and writes the files itself.
		if (!this.settings.applyWrites) return;
		await this.handoff.drain();
	}

	private async persist(): Promise<void> {
		await this.saveData({ settings: this.settings, appliedWriteIds: this.appliedIds.toArray() });
	}
}
