import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { ACTIVE_NOTE } from "./fixtures";
import { settle } from "./manual-timers";
import { Harness, click, openRelatedView, startPlugin, texts } from "./plugin-harness";

describe("Related ideas view", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("renders the active note's related ideas: titles, scores, headings, passages, why lines", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		assert.deepEqual(texts(view, ".ideaweave-related-note"), ["Corrigibility"]);
		assert.deepEqual(texts(view, ".ideaweave-idea-title"), [
			"Shutdown problem",
			"Notes on ELK",
			"Reward hacking",
			"Concrete Problems in AI Safety",
		]);
		assert.deepEqual(texts(view, ".ideaweave-score"), ["0.86", "0.74", "0.69", "0.61"]);
		assert.deepEqual(texts(view, ".ideaweave-idea-heading"), [
			"Utility indifference",
			"Why a reporter would lie",
			"Safe interruptibility",
		]);
		const passages = texts(view, ".ideaweave-passage");
		assert.equal(passages.length, 4);
		assert.match(passages[0], /indifferent to whether its off-switch is pressed/);
		assert.match(texts(view, ".ideaweave-why")[1], /both cite \[\[Deceptive alignment\]\]/);

		const asked = h.daemon.requestsTo("/related");
		assert.equal(asked.at(-1)?.params.note, ACTIVE_NOTE);
		assert.equal(asked.at(-1)?.params.k, "10");
		assert.equal(asked.at(-1)?.authorization, `Bearer ${h.daemon.token}`);
	});

	test("passages are shown as text, never parsed as HTML", async () => {
		h = await startPlugin();
		h.daemon.related.get(ACTIVE_NOTE)![0].passage = '<img src=x onerror="alert(1)"> and <b>bold</b>';
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		assert.equal(view.querySelectorAll(".ideaweave-passage img, .ideaweave-passage b").length, 0);
		assert.match(texts(view, ".ideaweave-passage")[0], /^<img src=x/);
	});

	test("clicking a title opens the note at the matching heading", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		click(view.querySelectorAll(".ideaweave-idea-title")[1]);
		click(view.querySelectorAll(".ideaweave-idea-title")[2]);

		assert.deepEqual(
			h.workspace.opened.map((o) => [o.linktext, o.sourcePath]),
			[
				["Alignment/Notes on ELK#Why a reporter would lie", ACTIVE_NOTE],
				["Alignment/Reward hacking", ACTIVE_NOTE],
			],
		);
	});

	test("pin and reject send the feedback the contract describes and update the list", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		click(view.querySelectorAll(".ideaweave-idea")[1].querySelector(".ideaweave-pin"));
		await settle();
		click(view.querySelectorAll(".ideaweave-idea")[2].querySelector(".ideaweave-reject"));
		await settle();
		click(view.querySelectorAll(".ideaweave-idea")[0].querySelector(".ideaweave-pin"));
		await settle();

		assert.deepEqual(
			h.daemon.requestsTo("/feedback").map((r) => [r.method, r.body]),
			[
				["POST", { note: ACTIVE_NOTE, target: "Alignment/Notes on ELK.md", action: "pin" }],
				["POST", { note: ACTIVE_NOTE, target: "Alignment/Reward hacking.md", action: "reject" }],
				// The first idea was pinned already, so its button unpins.
				["POST", { note: ACTIVE_NOTE, target: "Alignment/Shutdown problem.md", action: "clear" }],
			],
		);
		assert.deepEqual(texts(view, ".ideaweave-idea-title"), [
			"Shutdown problem",
			"Notes on ELK",
			"Concrete Problems in AI Safety",
		]);
		assert.deepEqual(texts(view, ".ideaweave-idea.is-pinned .ideaweave-idea-title"), ["Notes on ELK"]);
		assert.deepEqual(texts(view, ".ideaweave-pin"), ["Pin", "Unpin", "Pin"]);
	});

	test("feedback that fails shows a notice and leaves the list as it was", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		h.daemon.running = false;

		click(view.querySelectorAll(".ideaweave-idea")[1].querySelector(".ideaweave-reject"));
		await settle();

		const { Notice } = await import("./obsidian-stub");
		assert.equal(Notice.shown.length, 1);
		assert.match(Notice.shown[0], /feedback was not saved/);
		assert.equal(view.querySelectorAll(".ideaweave-idea").length, 4);
	});

	test("switching notes refreshes once after the burst of workspace events", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		h.daemon.related.set("Alignment/Reward hacking.md", [
			{
				path: "Alignment/Mesa-optimizers.md",
				title: "Mesa-optimizers",
				score: 0.71,
				heading: "Proxy alignment",
				link: "[[Alignment/Mesa-optimizers#Proxy alignment]]",
				passage: "A learned optimizer pursues whatever objective scored well in training.",
				why: "section 'Proxy alignment' matches",
				pinned: false,
			},
		]);
		const before = h.daemon.requestsTo("/related").length;

		h.workspace.openNote("Alignment/Notes on ELK.md");
		h.workspace.openNote("Alignment/Reward hacking.md");
		await h.timers.advance(100);
		assert.equal(h.daemon.requestsTo("/related").length, before, "no request before the debounce delay");
		await h.timers.advance(300);

		const asked = h.daemon.requestsTo("/related").slice(before);
		assert.deepEqual(
			asked.map((r) => r.params.note),
			["Alignment/Reward hacking.md"],
		);
		assert.deepEqual(texts(view, ".ideaweave-related-note"), ["Reward hacking"]);
		assert.deepEqual(texts(view, ".ideaweave-idea-title"), ["Mesa-optimizers"]);
	});

	test("a note the daemon does not know, and no note at all, each get their own message", async () => {
		h = await startPlugin();
		h.workspace.openNote("Daily/2024-03-02.md");
		const view = await openRelatedView(h);
		assert.deepEqual(texts(view, ".ideaweave-message-title"), ["2024-03-02 is not indexed yet"]);

		h.workspace.openNote(null);
		await h.timers.advance(300);
		assert.deepEqual(texts(view, ".ideaweave-message-title"), ["No note open"]);
	});

	test("refreshes when the daemon reports that its index changed", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		await h.timers.advance(300); // the refresh the note switch itself asked for
		const before = h.daemon.requestsTo("/related").length;

		// A poll that finds nothing new asks for nothing.
		await h.timers.advance(3_300);
		assert.equal(h.daemon.requestsTo("/related").length, before);

		h.daemon.status.notes = 750;
		h.daemon.related.get(ACTIVE_NOTE)!.unshift({
			path: "Alignment/Mesa-optimizers.md",
			title: "Mesa-optimizers",
			score: 0.9,
			heading: null,
			link: "[[Alignment/Mesa-optimizers]]",
			passage: "Inner alignment asks whether the learned optimizer wants what the outer objective rewarded.",
			why: "whole note matches",
			pinned: false,
		});
		await h.timers.advance(3_300);

		assert.equal(h.daemon.requestsTo("/related").length, before + 1);
		assert.equal(texts(view, ".ideaweave-idea-title")[0], "Mesa-optimizers");
	});
});
