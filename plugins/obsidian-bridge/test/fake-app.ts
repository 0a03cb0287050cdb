// Fakes of the app's services, built on the obsidian stub: a vault of named
// notes, a file manager that keeps each note's frontmatter in memory, and a
// workspace with an active note, a right sidebar and a record of opened links.

import {
	App,
	CachedMetadata,
	Events,
	FileManager,
	MetadataCache,
	TAbstractFile,
	TFile,
	Vault,
	Workspace,
	WorkspaceLeaf,
} from "./obsidian-stub";

export class FakeVault implements Vault {
	readonly files = new Map<string, TFile>();

	constructor(paths: string[]) {
		for (const path of paths) this.files.set(path, new TFile(path));
	}

	getAbstractFileByPath(path: string): TAbstractFile | null {
		return this.files.get(path) ?? null;
	}
}

export class FakeFileManager implements FileManager {
	readonly frontmatter = new Map<string, Record<string, unknown>>();
	/** Paths in the order processFrontMatter changed them. */
	readonly edits: string[] = [];
	/** Paths whose frontmatter cannot be parsed: processFrontMatter throws for them. */
	readonly broken = new Set<string>();

	async processFrontMatter(file: TFile, fn: (frontmatter: any) => void): Promise<void> {
		if (this.broken.has(file.path)) throw new Error(`${file.path}: can't parse frontmatter\nline 2`);
		const frontmatter = structuredClone(this.frontmatter.get(file.path) ?? {});
		fn(frontmatter);
		this.frontmatter.set(file.path, frontmatter);
		this.edits.push(file.path);
	}
}

export class FakeMetadataCache implements MetadataCache {
	constructor(private readonly fileManager: FakeFileManager) {}

	getFileCache(file: TFile): CachedMetadata | null {
		const frontmatter = this.fileManager.frontmatter.get(file.path);
		return frontmatter ? { frontmatter } : {};
	}
}

export interface OpenedLink {
	linktext: string;
	sourcePath: string;
	newLeaf: boolean | string | undefined;
}

export class FakeWorkspace extends Events implements Workspace {
	app!: App;
	activeFile: TFile | null = null;
	readonly leaves: WorkspaceLeaf[] = [];
	readonly opened: OpenedLink[] = [];
	private layoutReady: Array<() => unknown> | null = [];

	constructor(private readonly vault: FakeVault) {
		super();
	}

	/** Makes a note active the way the app does: a file-open event, then an active-leaf-change. */
	openNote(path: string | null): void {
		this.activeFile = path === null ? null : (this.vault.files.get(path) ?? null);
		this.trigger("file-open", this.activeFile);
		this.trigger("active-leaf-change", null);
	}

	/** Runs the callbacks waiting for onLayoutReady, as the app does once it has started. */
	finishLayout(): void {
		const waiting = this.layoutReady ?? [];
		this.layoutReady = null;
		for (const callback of waiting) callback();
	}

	getActiveFile(): TFile | null {
		return this.activeFile;
	}

	getLeavesOfType(viewType: string): WorkspaceLeaf[] {
		return this.leaves.filter((leaf) => leaf.view?.getViewType() === viewType);
	}

	getRightLeaf(): WorkspaceLeaf {
		const leaf = new WorkspaceLeaf(this.app);
		this.leaves.push(leaf);
		return leaf;
	}

	async revealLeaf(): Promise<void> {}

	async openLinkText(linktext: string, sourcePath: string, newLeaf?: boolean | string): Promise<void> {
		this.opened.push({ linktext, sourcePath, newLeaf });
	}

	onLayoutReady(callback: () => unknown): void {
		if (this.layoutReady === null) callback();
		else this.layoutReady.push(callback);
	}
}

export interface FakeApp {
	app: App;
	vault: FakeVault;
	workspace: FakeWorkspace;
	fileManager: FakeFileManager;
	metadataCache: FakeMetadataCache;
}

export function createFakeApp(
	document: Document,
	notes: string[],
	places: { statusBarEl?: HTMLElement; modalLayerEl?: HTMLElement } = {},
): FakeApp {
	const vault = new FakeVault(notes);
	const workspace = new FakeWorkspace(vault);
	const fileManager = new FakeFileManager();
	const metadataCache = new FakeMetadataCache(fileManager);
	const app = new App(vault, workspace, fileManager, metadataCache, document, places);
	workspace.app = app;
	return { app, vault, workspace, fileManager, metadataCache };
}
