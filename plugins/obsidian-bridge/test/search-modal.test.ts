import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { IdeaSearchModal, TYPING_PAUSE_MS, headingAt, passageRequest } from "../src/search-modal";
import { FakeDaemon } from "./fake-daemon";
import { ACTIVE_NOTE, SEARCH_HITS } from "./fixtures";
import { settle } from "./manual-timers";
import { Editor, EditorPosition, TFile } from "./obsidian-stub";
import { Harness, click, startPlugin, texts } from "./plugin-harness";

function searchModal(h: Harness): { modal: HTMLElement; input: HTMLInputElement } {
	h.plugin.commands.get("search-ideas")!.callback!();
	const modal = h.app.modalLayerEl;
	return { modal, input: modal.querySelector("input")! };
}

async function keystroke(input: HTMLInputElement, text: string): Promise<void> {
	input.value = text;
	input.dispatchEvent(new input.ownerDocument.defaultView!.Event("input"));
	await settle();
}

function hit(title: string) {
	return { ...SEARCH_HITS[0], path: `${title}.md`, title, heading: null };
}

describe("search as you type", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("asks once typing pauses, not on every keystroke", async () => {
		h = await startPlugin();
		const { input } = searchModal(h);
		for (const prefix of ["o", "of", "off", "off ", "off s", "off sw"]) {
			await keystroke(input, prefix);
			await h.timers.advance(TYPING_PAUSE_MS / 3);
		}
		assert.equal(h.daemon.requestsTo("/search").length, 0, "nothing sent while the user types");
		await h.timers.advance(TYPING_PAUSE_MS);
		assert.deepEqual(h.daemon.requestsTo("/search").map((r) => r.params.q), ["off sw"]);
	});

	test("each result shows its note, heading, best passage and why", async () => {
		h = await startPlugin();
		const { modal, input } = searchModal(h);
		await keystroke(input, "off switch");
		await h.timers.advance(TYPING_PAUSE_MS);
		const first = modal.querySelector(".suggestion-item")!;
		assert.equal(texts(first, ".ideaweave-idea-title")[0], "Shutdown problem");
		assert.equal(texts(first, ".ideaweave-idea-heading")[0], "Off-switch game");
		assert.match(texts(first, ".ideaweave-hit-passage")[0], /defers to the off-switch/);
		assert.equal(texts(first, ".ideaweave-why")[0], "section 'Off-switch game' matches; shares keywords");
		assert.deepEqual(texts(modal, ".ideaweave-why"), SEARCH_HITS.map((x) => x.why));
	});

	test("an answer overtaken by a newer query never reaches the screen", async () => {
		const daemon = new FakeDaemon();
		daemon.holdSearches = true;
		daemon.searchAnswers.set("reward", [hit("Stale answer")]);
		daemon.searchAnswers.set("reward hacking", [hit("Reward hacking")]);
		h = await startPlugin({ daemon });
		const { modal, input } = searchModal(h);

		await keystroke(input, "reward");
		await h.timers.advance(TYPING_PAUSE_MS); // sent, and slow to answer
		await keystroke(input, "reward hacking");
		await h.timers.advance(TYPING_PAUSE_MS);
		assert.deepEqual(daemon.heldSearches.map((s) => s.q), ["reward", "reward hacking"]);

		daemon.heldSearches[1].release(); // the newer answer first
		await settle();
		daemon.heldSearches[0].release(); // then the stale one
		await settle();
		assert.deepEqual(texts(modal, ".ideaweave-idea-title"), ["Reward hacking"]);
	});

	test("the overtaken query answers with the newest query's results, whatever order they arrive in", async () => {
		const daemon = new FakeDaemon();
		daemon.holdSearches = true;
		daemon.searchAnswers.set("reward", [hit("Stale answer")]);
		daemon.searchAnswers.set("reward hacking", [hit("Reward hacking")]);
		h = await startPlugin({ daemon });
		const modal = new IdeaSearchModal(h.app, h.plugin.api, h.timers);
		const older = modal.getSuggestions("reward");
		await h.timers.advance(TYPING_PAUSE_MS);
		const newer = modal.getSuggestions("reward hacking");
		await h.timers.advance(TYPING_PAUSE_MS);
		daemon.heldSearches[1].release();
		daemon.heldSearches[0].release();
		const [fromOlder, fromNewer] = await Promise.all([older, newer]);
		assert.deepEqual(fromOlder.map((x) => x.title), ["Reward hacking"]);
		assert.deepEqual(fromNewer.map((x) => x.title), ["Reward hacking"]);
	});

	test("a query typed over before it was sent is never sent", async () => {
		h = await startPlugin();
		const { input } = searchModal(h);
		await keystroke(input, "goodhart");
		await h.timers.advance(TYPING_PAUSE_MS - 1);
		await keystroke(input, "goodhart's law");
		await h.timers.advance(TYPING_PAUSE_MS);
		assert.deepEqual(h.daemon.requestsTo("/search").map((r) => r.params.q), ["goodhart's law"]);
	});
});

class FakeEditor extends Editor {
	constructor(
		private readonly text: string,
		private readonly selection = "",
		private readonly cursorLine = 0,
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
		return { line: this.cursorLine, ch: 0 };
	}
}

const NOTE_TEXT = [
	"---",
	"tags: [alignment]",
	"# not a heading: frontmatter",
	"---",
	"# Corrigibility",
	"An agent that lets itself be corrected.",
	"## Shutdown problem",
	"```python",
	"# not a heading: code",
	"```",
	"The off switch.",
].join("\n");

describe("What else have I written about this?", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	function moreLikeThis(h: Harness, editor: Editor, file: string | null, checking = false): boolean | void {
		const command = h.plugin.commands.get("more-like-this")!;
		return command.editorCheckCallback!(checking, editor, { file: file === null ? null : new TFile(file) });
	}

	test("searches by the selection, leaves its note out, and opens the chosen note at its heading", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const editor = new FakeEditor(NOTE_TEXT, "lets itself be corrected", 5);
		assert.equal(moreLikeThis(h, editor, ACTIVE_NOTE, true), true);
		moreLikeThis(h, editor, ACTIVE_NOTE);
		await settle();

		const [request] = h.daemon.requestsTo("/search");
		assert.equal(request.method, "POST");
		assert.deepEqual(request.body, { note: ACTIVE_NOTE, passage: "lets itself be corrected", k: 20 });
		const modal = h.app.modalLayerEl;
		assert.deepEqual(texts(modal, ".ideaweave-idea-title"), ["Shutdown problem", "Reward hacking"]);
		assert.deepEqual(texts(modal, ".ideaweave-why"), ["section 'Off-switch game' matches; shares keywords",
			"section 'Examples' matches"]);

		await keystroke(modal.querySelector("input")!, "boat");
		assert.deepEqual(texts(modal, ".ideaweave-idea-title"), ["Reward hacking"], "typing filters the answer");
		click(modal.querySelector(".suggestion-item"));
		assert.deepEqual(h.workspace.opened.at(-1), { linktext: "Alignment/Reward hacking#Examples", sourcePath: ACTIVE_NOTE, newLeaf: undefined });
	});

	test("without a selection, searches by the section the cursor is in", async () => {
		h = await startPlugin();
		moreLikeThis(h, new FakeEditor(NOTE_TEXT, "", 10), ACTIVE_NOTE);
		await settle();
		assert.deepEqual(h.daemon.requestsTo("/search")[0].body, { note: ACTIVE_NOTE, heading: "Shutdown problem", k: 20 });
	});

	test("is offered only with a selection or a note", async () => {
		h = await startPlugin();
		assert.equal(moreLikeThis(h, new FakeEditor("", "", 0), null, true), false);
		assert.equal(moreLikeThis(h, new FakeEditor("text", "text", 0), null, true), true);
		assert.equal(h.daemon.requestsTo("/search").length, 0, "checking sends nothing");
	});

	test("says so when the daemon does not know the note", async () => {
		h = await startPlugin();
		moreLikeThis(h, new FakeEditor(NOTE_TEXT, "", 10), "Unindexed.md");
		await settle();
		assert.match(texts(h.app.modalLayerEl, ".suggestion-empty")[0], /not indexed this note/);
	});

	test("says the daemon is not running instead of failing", async () => {
		const daemon = new FakeDaemon();
		daemon.running = false;
		h = await startPlugin({ daemon });
		moreLikeThis(h, new FakeEditor(NOTE_TEXT, "a passage", 0), ACTIVE_NOTE);
		await settle();
		assert.match(texts(h.app.modalLayerEl, ".suggestion-empty")[0], /daemon is not running/);
	});
});

describe("the passage a request carries", () => {
	test("the heading above the cursor, skipping frontmatter and code", () => {
		const lines = NOTE_TEXT.split("\n");
		assert.equal(headingAt(lines, 3), null);
		assert.equal(headingAt(lines, 5), "Corrigibility");
		assert.equal(headingAt(lines, 8), "Shutdown problem");
		assert.equal(headingAt(["## Closed heading ##", "text"], 1), "Closed heading");
	});

	test("a selection wins over the cursor's section; no note, no note sent", () => {
		const lines = () => NOTE_TEXT.split("\n");
		assert.deepEqual(passageRequest("  a passage ", "A.md", lines, 10), { note: "A.md", passage: "  a passage " });
		assert.deepEqual(passageRequest("a passage", null, lines, 10), { passage: "a passage" });
		assert.deepEqual(passageRequest(" ", "A.md", lines, 10), { note: "A.md", heading: "Shutdown problem" });
		assert.deepEqual(passageRequest("", "A.md", lines, 0), { note: "A.md" });
	});
});
