// Starts the real plugin against the fake app, the fake daemon and hand-driven timers.

import { Window } from "happy-dom";
import type { FetchLike } from "../src/api-client";
import IdeaweaveBridgePlugin from "../src/main";
import { DEFAULT_SETTINGS } from "../src/settings";
import { FakeApp, createFakeApp } from "./fake-app";
import { FakeDaemon } from "./fake-daemon";
import { NOTE_PATHS } from "./fixtures";
import { ManualTimers, settle } from "./manual-timers";
import { App, Notice } from "./obsidian-stub";

export const MANIFEST = { id: "ideaweave-bridge", name: "ideaweave bridge", version: "0.1.0" };

export interface Harness extends FakeApp {
	plugin: IdeaweaveBridgePlugin;
	daemon: FakeDaemon;
	timers: ManualTimers;
	warnings: string[];
	close(): Promise<void>;
}

export interface HarnessOptions {
	daemon?: FakeDaemon;
	/** Plugin data as an earlier run of Obsidian saved it (defaults: the daemon's token, nothing applied). */
	pluginData?: unknown;
	/** The plugin class to start: the one built from src/ unless a test loads another build (the release zip's). */
	pluginClass?: typeof IdeaweaveBridgePlugin;
	/** How the plugin reaches a daemon, when not through the fake (a real daemon: the global fetch). */
	fetch?: FetchLike;
}

export async function startPlugin(options: HarnessOptions = {}): Promise<Harness> {
	const window = new Window();
	const document = window.document as unknown as Document;
	const fake = createFakeApp(document, NOTE_PATHS);
	const daemon = options.daemon ?? new FakeDaemon();
	const data = options.pluginData ?? { settings: { ...DEFAULT_SETTINGS, token: daemon.token }, appliedWriteIds: [] };
	fake.app.pluginData.set(MANIFEST.id, data);
	Notice.shown = [];

	const timers = new ManualTimers();
	const warnings: string[] = [];
	const plugin = new (options.pluginClass ?? IdeaweaveBridgePlugin)(fake.app, MANIFEST);
	plugin.environment = { fetch: options.fetch ?? daemon.fetch, timers, log: { warn: (message) => warnings.push(message) } };
	await plugin.onload();
	fake.workspace.finishLayout();
	await settle();

	const close = async () => {
		plugin.unload();
		await window.happyDOM.close();
	};
	return { ...fake, plugin, daemon, timers, warnings, close };
}

/** Opens the Related ideas view in the right sidebar and lets its first refresh finish. */
export async function openRelatedView(h: Harness): Promise<HTMLElement> {
	await h.plugin.openRelatedView();
	await settle();
	const leaf = h.workspace.getLeavesOfType("ideaweave-related")[0];
	if (!leaf) throw new Error("the Related ideas view did not open");
	return leaf.containerEl;
}

export function texts(root: ParentNode, selector: string): string[] {
	return [...root.querySelectorAll(selector)].map((el) => (el.textContent ?? "").trim());
}

export function statusBarText(app: App): string {
	return (app.statusBarEl.textContent ?? "").trim();
}

export function click(el: Element | null): void {
	if (!el) throw new Error("nothing to click");
	(el as HTMLElement).click();
}
