// A small stand-in for the `obsidian` module: the part of its API the plugin
// uses, with just enough behaviour to run the plugin outside the app. Tests
// (through a path alias) and the browser check (bundled into the page) load it
// where the plugin imports "obsidian". The app's own objects (vault, workspace,
// file manager, metadata cache) are interfaces here; test/fake-app.ts fakes them.

// ---- events and components ----

export interface EventRef {
	events: Events;
	name: string;
	callback: (...data: unknown[]) => unknown;
}

export class Events {
	private readonly handlers = new Map<string, Set<EventRef>>();

	on(name: string, callback: (...data: any[]) => unknown): EventRef {
		const ref: EventRef = { events: this, name, callback };
		if (!this.handlers.has(name)) this.handlers.set(name, new Set());
		this.handlers.get(name)!.add(ref);
		return ref;
	}

	offref(ref: EventRef): void {
		this.handlers.get(ref.name)?.delete(ref);
	}

	trigger(name: string, ...data: unknown[]): void {
		for (const ref of [...(this.handlers.get(name) ?? [])]) ref.callback(...data);
	}
}

export class Component {
	private readonly cleanups: Array<() => void> = [];

	load(): void {
		void this.onload();
	}

	unload(): void {
		while (this.cleanups.length > 0) this.cleanups.pop()!();
		this.onunload();
	}

	onload(): void | Promise<void> {}

	onunload(): void {}

	register(cleanup: () => void): void {
		this.cleanups.push(cleanup);
	}

	registerEvent(ref: EventRef): void {
		this.register(() => ref.events.offref(ref));
	}

	registerDomEvent<K extends keyof HTMLElementEventMap>(
		el: HTMLElement,
		type: K,
		callback: (this: HTMLElement, ev: HTMLElementEventMap[K]) => unknown,
	): void {
		el.addEventListener(type, callback);
		this.register(() => el.removeEventListener(type, callback));
	}
}

// ---- files and the app's services ----

export class TAbstractFile {
	name: string;
	constructor(public path: string) {
		this.name = path.split("/").pop() ?? path;
	}
}

export class TFile extends TAbstractFile {
	basename: string;
	extension: string;
	constructor(path: string) {
		super(path);
		const dot = this.name.lastIndexOf(".");
		this.basename = dot > 0 ? this.name.slice(0, dot) : this.name;
		this.extension = dot > 0 ? this.name.slice(dot + 1) : "";
	}
}

export interface Vault {
	getAbstractFileByPath(path: string): TAbstractFile | null;
}

export interface FileManager {
	processFrontMatter(file: TFile, fn: (frontmatter: any) => void): Promise<void>;
}

export interface CachedMetadata {
	frontmatter?: Record<string, unknown>;
}

export interface MetadataCache {
	getFileCache(file: TFile): CachedMetadata | null;
}

export interface ViewState {
	type: string;
	active?: boolean;
}

export interface Workspace extends Events {
	getActiveFile(): TFile | null;
	getLeavesOfType(viewType: string): WorkspaceLeaf[];
	getRightLeaf(split: boolean): WorkspaceLeaf | null;
	revealLeaf(leaf: WorkspaceLeaf): Promise<void>;
	openLinkText(linktext: string, sourcePath: string, newLeaf?: boolean | string): Promise<void>;
	onLayoutReady(callback: () => unknown): void;
}

/**
 * The app. Besides the four services it holds what the real app keeps
 * elsewhere and the stub needs in one place: the document to build DOM in,
 * the status bar, the layer modals open in, registered views and plugin data.
 */
export class App {
	readonly viewFactories = new Map<string, (leaf: WorkspaceLeaf) => View>();
	readonly pluginData = new Map<string, unknown>();
	readonly statusBarEl: HTMLElement;
	readonly modalLayerEl: HTMLElement;

	constructor(
		readonly vault: Vault,
		readonly workspace: Workspace,
		readonly fileManager: FileManager,
		readonly metadataCache: MetadataCache,
		readonly document: Document,
		places: { statusBarEl?: HTMLElement; modalLayerEl?: HTMLElement } = {},
	) {
		this.statusBarEl = places.statusBarEl ?? makeEl(document, "div", "status-bar");
		this.modalLayerEl = places.modalLayerEl ?? makeEl(document, "div", "modal-layer");
	}
}

// ---- views ----

export class WorkspaceLeaf {
	view: View | null = null;
	readonly containerEl: HTMLElement;

	constructor(readonly app: App) {
		this.containerEl = makeEl(app.document, "div", "workspace-leaf");
	}

	async setViewState(state: ViewState): Promise<void> {
		const factory = this.app.viewFactories.get(state.type);
		if (!factory) throw new Error(`no view registered for ${state.type}`);
		if (this.view) await this.detachView();
		const view = factory(this);
		this.view = view;
		this.containerEl.appendChild(view.containerEl);
		if (view instanceof ItemView) view.titleEl.textContent = view.getDisplayText();
		await view.onOpen();
	}

	async detach(): Promise<void> {
		await this.detachView();
		this.containerEl.remove();
	}

	private async detachView(): Promise<void> {
		const view = this.view;
		this.view = null;
		if (!view) return;
		await view.onClose();
		view.unload();
		view.containerEl.remove();
	}
}

export abstract class View extends Component {
	readonly app: App;
	readonly containerEl: HTMLElement;

	constructor(readonly leaf: WorkspaceLeaf) {
		super();
		this.app = leaf.app;
		this.containerEl = makeEl(leaf.app.document, "div", "workspace-leaf-content");
	}

	abstract getViewType(): string;
	abstract getDisplayText(): string;

	getIcon(): string {
		return "document";
	}

	async onOpen(): Promise<void> {}

	async onClose(): Promise<void> {}
}

const ICON_GLYPHS: Record<string, string> = { "refresh-cw": "↻", lightbulb: "💡" };

export abstract class ItemView extends View {
	readonly contentEl: HTMLElement;
	readonly titleEl: HTMLElement;
	private readonly actionsEl: HTMLElement;

	constructor(leaf: WorkspaceLeaf) {
		super(leaf);
		const doc = leaf.app.document;
		const header = this.containerEl.appendChild(makeEl(doc, "div", "view-header"));
		this.titleEl = header.appendChild(makeEl(doc, "div", "view-header-title"));
		this.actionsEl = header.appendChild(makeEl(doc, "div", "view-actions"));
		this.contentEl = this.containerEl.appendChild(makeEl(doc, "div", "view-content"));
	}

	addAction(icon: string, title: string, callback: (evt: MouseEvent) => unknown): HTMLElement {
		const el = makeEl(this.app.document, "a", "clickable-icon view-action", ICON_GLYPHS[icon] ?? "•");
		el.setAttribute("aria-label", title);
		el.addEventListener("click", (evt) => callback(evt as MouseEvent));
		this.actionsEl.appendChild(el);
		return el;
	}
}

// ---- plugin ----

export interface PluginManifest {
	id: string;
	name: string;
	version: string;
	minAppVersion?: string;
	description?: string;
	author?: string;
	isDesktopOnly?: boolean;
}

export interface EditorPosition {
	line: number;
	ch: number;
}

/** The part of the editor the plugin reads: its text, the selection and the cursor. */
export abstract class Editor {
	abstract getValue(): string;
	abstract getSelection(): string;
	abstract getCursor(side?: "from" | "to" | "head" | "anchor"): EditorPosition;
}

export interface MarkdownFileInfo {
	file: TFile | null;
}

export interface Command {
	id: string;
	name: string;
	callback?: () => unknown;
	checkCallback?: (checking: boolean) => boolean | void;
	editorCheckCallback?: (checking: boolean, editor: Editor, ctx: MarkdownFileInfo) => boolean | void;
}

export interface HoverLinkSource {
	display: string;
	defaultMod: boolean;
}

export class Plugin extends Component {
	readonly commands = new Map<string, Command>();
	readonly settingTabs: PluginSettingTab[] = [];
	readonly hoverLinkSources = new Map<string, HoverLinkSource>();

	constructor(
		readonly app: App,
		readonly manifest: PluginManifest,
	) {
		super();
	}

	async loadData(): Promise<any> {
		const data = this.app.pluginData.get(this.manifest.id);
		return data === undefined ? null : JSON.parse(JSON.stringify(data));
	}

	async saveData(data: unknown): Promise<void> {
		// A copy, as if through a file: later changes to `data` must not leak into what was "saved".
		this.app.pluginData.set(this.manifest.id, JSON.parse(JSON.stringify(data)));
	}

	registerView(type: string, factory: (leaf: WorkspaceLeaf) => View): void {
		this.app.viewFactories.set(type, factory);
	}

	registerHoverLinkSource(id: string, info: HoverLinkSource): void {
		this.hoverLinkSources.set(id, info);
	}

	addCommand(command: Command): Command {
		this.commands.set(command.id, command);
		return command;
	}

	addRibbonIcon(icon: string, title: string, callback: (evt: MouseEvent) => unknown): HTMLElement {
		const el = makeEl(this.app.document, "div", "side-dock-ribbon-action", ICON_GLYPHS[icon] ?? "•");
		el.setAttribute("aria-label", title);
		el.addEventListener("click", (evt) => callback(evt as MouseEvent));
		return el;
	}

	addStatusBarItem(): HTMLElement {
		const el = makeEl(this.app.document, "div", "status-bar-item");
		this.app.statusBarEl.appendChild(el);
		this.register(() => el.remove());
		return el;
	}

	addSettingTab(tab: PluginSettingTab): void {
		this.settingTabs.push(tab);
	}
}

// ---- modals ----

export class Modal {
	readonly containerEl: HTMLElement;
	readonly modalEl: HTMLElement;
	readonly titleEl: HTMLElement;
	readonly contentEl: HTMLElement;

	constructor(readonly app: App) {
		const doc = app.document;
		this.containerEl = makeEl(doc, "div", "modal-container");
		this.modalEl = this.containerEl.appendChild(makeEl(doc, "div", "modal"));
		this.titleEl = this.modalEl.appendChild(makeEl(doc, "div", "modal-title"));
		this.contentEl = this.modalEl.appendChild(makeEl(doc, "div", "modal-content"));
	}

	open(): void {
		this.app.modalLayerEl.appendChild(this.containerEl);
		this.onOpen();
	}

	close(): void {
		this.containerEl.remove();
		this.onClose();
	}

	onOpen(): void {}

	onClose(): void {}
}

export abstract class SuggestModal<T> extends Modal {
	limit = 100;
	emptyStateText = "No results found.";
	readonly inputEl: HTMLInputElement;
	readonly resultContainerEl: HTMLElement;

	constructor(app: App) {
		super(app);
		const doc = app.document;
		this.inputEl = makeEl(doc, "input", "prompt-input");
		this.resultContainerEl = makeEl(doc, "div", "prompt-results");
		this.modalEl.classList.add("prompt");
		this.modalEl.prepend(this.inputEl);
		this.modalEl.appendChild(this.resultContainerEl);
		this.inputEl.addEventListener("input", () => void this.updateSuggestions());
	}

	setPlaceholder(placeholder: string): void {
		this.inputEl.placeholder = placeholder;
	}

	/** Runs the query in the input box and renders the answer (the app does this on every keystroke). */
	async updateSuggestions(): Promise<void> {
		const query = this.inputEl.value;
		const values = (await this.getSuggestions(query)).slice(0, this.limit);
		if (query !== this.inputEl.value) return;
		this.resultContainerEl.replaceChildren();
		if (values.length === 0) {
			this.resultContainerEl.appendChild(makeEl(this.app.document, "div", "suggestion-empty", this.emptyStateText));
			return;
		}
		for (const value of values) {
			const el = makeEl(this.app.document, "div", "suggestion-item");
			this.renderSuggestion(value, el);
			el.addEventListener("click", (evt) => this.selectSuggestion(value, evt as MouseEvent));
			this.resultContainerEl.appendChild(el);
		}
	}

	selectSuggestion(value: T, evt: MouseEvent | KeyboardEvent): void {
		this.close();
		this.onChooseSuggestion(value, evt);
	}

	abstract getSuggestions(query: string): T[] | Promise<T[]>;
	abstract renderSuggestion(value: T, el: HTMLElement): void;
	abstract onChooseSuggestion(item: T, evt: MouseEvent | KeyboardEvent): void;
}

// ---- settings ----

export abstract class PluginSettingTab {
	readonly containerEl: HTMLElement;

	constructor(
		readonly app: App,
		readonly plugin: Plugin,
	) {
		this.containerEl = makeEl(app.document, "div", "vertical-tab-content");
	}

	abstract display(): void;

	hide(): void {}
}

type Changed<V> = (value: V) => unknown;

export class TextComponent {
	constructor(readonly inputEl: HTMLInputElement) {}
	setPlaceholder(placeholder: string): this {
		this.inputEl.placeholder = placeholder;
		return this;
	}
	setValue(value: string): this {
		this.inputEl.value = value;
		return this;
	}
	getValue(): string {
		return this.inputEl.value;
	}
	onChange(callback: Changed<string>): this {
		this.inputEl.addEventListener("input", () => callback(this.inputEl.value));
		return this;
	}
}

export class ToggleComponent {
	constructor(readonly toggleEl: HTMLInputElement) {
		toggleEl.type = "checkbox";
	}
	setValue(on: boolean): this {
		this.toggleEl.checked = on;
		return this;
	}
	getValue(): boolean {
		return this.toggleEl.checked;
	}
	onChange(callback: Changed<boolean>): this {
		this.toggleEl.addEventListener("change", () => callback(this.toggleEl.checked));
		return this;
	}
}

export class SliderComponent {
	constructor(readonly sliderEl: HTMLInputElement) {
		sliderEl.type = "range";
	}
	setLimits(min: number, max: number, step: number): this {
		Object.assign(this.sliderEl, { min: String(min), max: String(max), step: String(step) });
		return this;
	}
	setValue(value: number): this {
		this.sliderEl.value = String(value);
		return this;
	}
	getValue(): number {
		return Number(this.sliderEl.value);
	}
	setDynamicTooltip(): this {
		return this;
	}
	onChange(callback: Changed<number>): this {
		this.sliderEl.addEventListener("input", () => callback(Number(this.sliderEl.value)));
		return this;
	}
}

export class ButtonComponent {
	constructor(readonly buttonEl: HTMLButtonElement) {}
	setButtonText(text: string): this {
		this.buttonEl.textContent = text;
		return this;
	}
	setCta(): this {
		this.buttonEl.classList.add("mod-cta");
		return this;
	}
	onClick(callback: (evt: MouseEvent) => unknown): this {
		this.buttonEl.addEventListener("click", (evt) => callback(evt as MouseEvent));
		return this;
	}
}

export class Setting {
	readonly settingEl: HTMLElement;
	readonly nameEl: HTMLElement;
	readonly descEl: HTMLElement;
	readonly controlEl: HTMLElement;

	constructor(containerEl: HTMLElement) {
		const doc = containerEl.ownerDocument;
		this.settingEl = containerEl.appendChild(makeEl(doc, "div", "setting-item"));
		const info = this.settingEl.appendChild(makeEl(doc, "div", "setting-item-info"));
		this.nameEl = info.appendChild(makeEl(doc, "div", "setting-item-name"));
		this.descEl = info.appendChild(makeEl(doc, "div", "setting-item-description"));
		this.controlEl = this.settingEl.appendChild(makeEl(doc, "div", "setting-item-control"));
	}

	setName(name: string): this {
		this.nameEl.textContent = name;
		return this;
	}

	setDesc(desc: string): this {
		this.descEl.textContent = desc;
		return this;
	}

	addText(build: (text: TextComponent) => unknown): this {
		build(new TextComponent(this.control("input")));
		return this;
	}

	addToggle(build: (toggle: ToggleComponent) => unknown): this {
		build(new ToggleComponent(this.control("input")));
		return this;
	}

	addSlider(build: (slider: SliderComponent) => unknown): this {
		build(new SliderComponent(this.control("input")));
		return this;
	}

	addButton(build: (button: ButtonComponent) => unknown): this {
		build(new ButtonComponent(this.control("button")));
		return this;
	}

	private control<K extends "input" | "button">(tag: K): HTMLElementTagNameMap[K] {
		return this.controlEl.appendChild(this.settingEl.ownerDocument.createElement(tag));
	}
}

// ---- small pieces ----

export class Notice {
	/** Every notice shown since the last reset, for tests to read. */
	static shown: string[] = [];
	constructor(readonly message: string) {
		Notice.shown.push(message);
	}
}

export class Keymap {
	static isModEvent(evt?: MouseEvent | KeyboardEvent | null): boolean | "tab" {
		return evt && (evt.ctrlKey || evt.metaKey) ? "tab" : false;
	}
}

export interface RequestUrlParam {
	url: string;
	method?: string;
	contentType?: string;
	body?: string | ArrayBuffer;
	headers?: Record<string, string>;
	throw?: boolean;
}

export interface RequestUrlResponse {
	status: number;
	headers: Record<string, string>;
	arrayBuffer: ArrayBuffer;
	json: any;
	text: string;
}

type RequestHandler = (request: RequestUrlParam) => Promise<RequestUrlResponse>;

let requestHandler: RequestHandler = async (request) => {
	throw new Error(`net::ERR_CONNECTION_REFUSED (${request.url})`);
};

/** Sets what `requestUrl` answers; by default every request fails as if nothing listened. */
export function setRequestUrlHandler(handler: RequestHandler): void {
	requestHandler = handler;
}

export function requestUrl(request: RequestUrlParam): Promise<RequestUrlResponse> {
	return requestHandler(request);
}

function makeEl<K extends keyof HTMLElementTagNameMap>(
	doc: Document,
	tag: K,
	cls: string,
	text?: string,
): HTMLElementTagNameMap[K] {
	const el = doc.createElement(tag);
	el.className = cls;
	if (text !== undefined) el.textContent = text;
	return el;
}
