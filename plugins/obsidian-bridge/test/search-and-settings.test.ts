import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { FakeDaemon } from "./fake-daemon";
import { ACTIVE_NOTE } from "./fixtures";
import { settle } from "./manual-timers";
import { Harness, MANIFEST, click, startPlugin, statusBarText, texts } from "./plugin-harness";
import { TYPING_PAUSE_MS } from "../src/search-modal";

function runCommand(h: Harness, id: string): void {
	const command = h.plugin.commands.get(id);
	if (!command?.callback) throw new Error(`no command ${id}`);
	command.callback();
}

async function type(input: HTMLInputElement, text: string): Promise<void> {
	input.value = text;
	input.dispatchEvent(new input.ownerDocument.defaultView!.Event("input"));
	await settle();
}

describe("search command", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("shows the daemon's results and opens the chosen one at its heading", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		runCommand(h, "search-ideas");
		const modal = h.app.modalLayerEl;
		await type(modal.querySelector("input")!, "off switch");
		await h.timers.advance(TYPING_PAUSE_MS);

		assert.deepEqual(texts(modal, ".suggestion-item .ideaweave-idea-title"), ["Shutdown problem", "Corrigibility"]);
		assert.deepEqual(texts(modal, ".suggestion-item .ideaweave-score"), ["0.81", "0.77"]);
		assert.equal(h.daemon.requestsTo("/search").at(-1)?.params.q, "off switch");

		click(modal.querySelector(".suggestion-item"));
		assert.deepEqual(h.workspace.opened, [
			{ linktext: "Alignment/Shutdown problem#Off-switch game", sourcePath: ACTIVE_NOTE, newLeaf: undefined },
		]);
		assert.equal(modal.children.length, 0, "the modal closed");
	});

	test("says the daemon is not running instead of failing", async () => {
		const daemon = new FakeDaemon();
		daemon.running = false;
		h = await startPlugin({ daemon });
		runCommand(h, "search-ideas");
		await type(h.app.modalLayerEl.querySelector("input")!, "reward hacking");
		await h.timers.advance(TYPING_PAUSE_MS);

		assert.match(texts(h.app.modalLayerEl, ".suggestion-empty")[0], /daemon is not running.*ideaweave watch/);
	});
});

describe("settings", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	function settingsTab(h: Harness): HTMLElement {
		const tab = h.plugin.settingTabs[0];
		tab.display();
		return tab.containerEl;
	}

	function settingNamed(root: HTMLElement, name: string): HTMLElement {
		const item = [...root.querySelectorAll(".setting-item")].find(
			(el) => el.querySelector(".setting-item-name")?.textContent === name,
		);
		if (!item) throw new Error(`no setting ${name}`);
		return item as HTMLElement;
	}

	test("show the defaults; test connection reports what the daemon said", async () => {
		h = await startPlugin();
		const tab = settingsTab(h);
		const address = settingNamed(tab, "Daemon address").querySelector("input")!;
		assert.equal(address.value, "http://127.0.0.1:8765");
		assert.equal(settingNamed(tab, "Token").querySelector("input")!.type, "password");

		const test = settingNamed(tab, "Test connection");
		click(test.querySelector("button"));
		await settle();
		assert.equal(texts(test, ".setting-item-description")[0], "Connected: 749 notes, 3400 chunks indexed (ideaweave 0.1.0).");

		h.daemon.running = false;
		click(test.querySelector("button"));
		await settle();
		assert.match(texts(test, ".setting-item-description")[0], /^No daemon answers at http:\/\/127\.0\.0\.1:8765/);
	});

	test("a new token is saved and used by the next poll", async () => {
		const daemon = new FakeDaemon();
		h = await startPlugin({ daemon, pluginData: { settings: { token: "" }, appliedWriteIds: [] } });
		assert.equal(statusBarText(h.app), "ideaweave: token rejected");

		await type(settingNamed(settingsTab(h), "Token").querySelector("input")!, ` ${daemon.token} `);
		await h.timers.advance(500);

		const saved = h.app.pluginData.get(MANIFEST.id) as { settings: { token: string } };
		assert.equal(saved.settings.token, daemon.token);
		assert.equal(statusBarText(h.app), "ideaweave: ready");
	});
});

describe("pause and resume commands", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("are offered only when they apply, and the status bar follows", async () => {
		h = await startPlugin();
		const pause = h.plugin.commands.get("pause-writing")!;
		const resume = h.plugin.commands.get("resume-writing")!;
		assert.equal(resume.checkCallback!(true), false);
		assert.equal(pause.checkCallback!(true), true);

		pause.checkCallback!(false);
		await settle();

		assert.equal(h.daemon.requestsTo("/pause").length, 1);
		assert.equal(statusBarText(h.app), "ideaweave: paused");
		assert.equal(pause.checkCallback!(true), false);
		assert.equal(resume.checkCallback!(true), true);
	});
});
