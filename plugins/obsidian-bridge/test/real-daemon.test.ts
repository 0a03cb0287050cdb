// The search modal, the "What else have I written about this?" command and the idea map view against the
// real daemon's API. The daemon's test suite (tests/test_api.py) serves the API over a small indexed vault and runs
// this file with IDEAWEAVE_TEST_API_URL and IDEAWEAVE_TEST_API_TOKEN set; without them it is skipped.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import type { FetchLike } from "../src/api-client";
import { DEFAULT_SETTINGS } from "../src/settings";
import { TYPING_PAUSE_MS } from "../src/search-modal";
import { Editor, EditorPosition, TFile } from "./obsidian-stub";
import { Harness, startPlugin, texts } from "./plugin-harness";

const URL = process.env.IDEAWEAVE_TEST_API_URL;
const TOKEN = process.env.IDEAWEAVE_TEST_API_TOKEN;
const skip = URL && TOKEN ? false : "no real daemon (set IDEAWEAVE_TEST_API_URL and IDEAWEAVE_TEST_API_TOKEN)";

class TextEditor extends Editor {
	constructor(
		private readonly text: string,
		private readonly selection: string,
		private readonly line: number,
	) {
		super();
	}
	getValue(): string {
		return this.text;
	}
	getSelection(): string {
		return this.selection;
	}
	getCursor(): EditorPosition {
		return { line: this.line, ch: 0 };
	}
}

async function realPlugin(): Promise<Harness> {
	const settings = { ...DEFAULT_SETTINGS, address: URL!, token: TOKEN! };
	return startPlugin({ fetch: fetch as unknown as FetchLike, pluginData: { settings, appliedWriteIds: [] } });
}

/** Real requests take real time: wait (in real time) until the modal shows results or says why not. */
async function answered(root: HTMLElement): Promise<void> {
	const deadline = Date.now() + 20_000;
	while (Date.now() < deadline) {
		if (root.querySelector(".suggestion-item")) return;
		const empty = texts(root, ".suggestion-empty")[0];
		if (empty && !/Looking|Type a few/.test(empty)) return;
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
	throw new Error("the modal showed no answer within 20 s");
}

describe("against the real daemon", { skip }, () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("the search modal searches as the user types", async () => {
		h = await realPlugin();
		h.plugin.commands.get("search-ideas")!.callback!();
		const modal = h.app.modalLayerEl;
		const input = modal.querySelector("input")!;
		for (const prefix of ["tom", "tomatoes", "tomatoes need sun"]) {
			input.value = prefix;
			input.dispatchEvent(new input.ownerDocument.defaultView!.Event("input"));
			await h.timers.advance(TYPING_PAUSE_MS / 2);
		}
		await h.timers.advance(TYPING_PAUSE_MS);
		await answered(modal);
		assert.equal(texts(modal, ".ideaweave-idea-title")[0], "Gardening");
		assert.match(texts(modal, ".ideaweave-hit-passage")[0], /Tomatoes need full sun/);
		assert.ok(texts(modal, ".ideaweave-why")[0].length > 0);
	});

	test("a selection finds the other notes about it, never its own", async () => {
		h = await realPlugin();
		const selection = "a rational agent resists being switched off unless it is uncertain about its objective";
		const editor = new TextEditor(`# Shutdown button\n\n${selection}`, selection, 2);
		h.plugin.commands.get("more-like-this")!.editorCheckCallback!(false, editor, { file: new TFile("Shutdown button.md") });
		await answered(h.app.modalLayerEl);
		const titles = texts(h.app.modalLayerEl, ".ideaweave-idea-title");
		assert.equal(titles[0], "Corrigibility");
		assert.ok(!titles.includes("Shutdown button"));
	});

	test("without a selection, the section the cursor is in", async () => {
		h = await realPlugin();
		const text = "# Corrigibility\n\nCorrigible agents.\n\n## Shutdown problem\n\nThe off switch.";
		const editor = new TextEditor(text, "", 6);
		h.plugin.commands.get("more-like-this")!.editorCheckCallback!(false, editor, { file: new TFile("Corrigibility.md") });
		await answered(h.app.modalLayerEl);
		const titles = texts(h.app.modalLayerEl, ".ideaweave-idea-title");
		assert.equal(titles[0], "Shutdown button");
		assert.ok(!titles.includes("Corrigibility"));
	});

	test("the idea map view shows the daemon's map page", async () => {
		h = await realPlugin();
		h.plugin.commands.get("open-map")!.callback!();
		const deadline = Date.now() + 60_000; // the first map of a vault computes its topics
		let frame: HTMLIFrameElement | null = null;
		while (!frame && Date.now() < deadline) {
			await new Promise((resolve) => setTimeout(resolve, 50));
			const leaf = h.workspace.getLeavesOfType("ideaweave-map")[0];
			frame = (leaf?.containerEl.querySelector("iframe.ideaweave-map-frame") as HTMLIFrameElement | null) ?? null;
		}
		assert.ok(frame, "the map view showed no map within 60 s");
		assert.match(frame.srcdoc, /^<!doctype html>/i);
		assert.match(frame.srcdoc, /Content-Security-Policy/);
		assert.match(frame.srcdoc, /"Corrigibility\.md"/);
	});
});
