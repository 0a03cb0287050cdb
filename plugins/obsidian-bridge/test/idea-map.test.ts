import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { parseDuplicates, parseNoteTopics } from "../src/idea-map-api";
import { MalformedResponse } from "../src/contract";
import { FakeDaemon } from "./fake-daemon";
import { ACTIVE_NOTE } from "./fixtures";
import { settle } from "./manual-timers";
import { Harness, click, startPlugin, texts } from "./plugin-harness";

// Answers shaped as the daemon's GET /topics?note= and GET /duplicates (daemon/ideaweave/schemas.py).
const TOPIC_BROAD = {
	id: "t0-aaaa", name: "agent, shutdown, reward", level: 0, parent: null,
	notes: ["Corrigibility.md", "Alignment/Shutdown problem.md", "Alignment/Reward hacking.md", "Alignment/Mesa-optimizers.md",
		"Alignment/Notes on ELK.md", "Reading/Concrete Problems in AI Safety.md"],
	phrases: ["agent", "shutdown", "reward"], central: "Corrigibility.md",
	description: "An agent is corrigible when it lets its overseers correct it.", neighbours: ["t0-bbbb"],
};
const TOPIC_FINE = { ...TOPIC_BROAD, id: "t1-cccc", level: 1, parent: "t0-aaaa", name: "shutdown, utility",
	notes: ["Corrigibility.md", "Alignment/Shutdown problem.md"], description: "The off switch problem.", neighbours: [] };
const TOPIC_NEXT = { ...TOPIC_BROAD, id: "t0-bbbb", name: "daily, log <b>bold</b>", notes: ["Daily/2024-03-02.md"],
	central: "Daily/2024-03-02.md", neighbours: ["t0-aaaa"] };
const DUPLICATES = {
	duplicates: [
		{ a: { path: "Alignment/Notes on ELK.md", heading: "Why a reporter would lie", passage: "A reporter <img src=x> might lie." },
			b: { path: "Alignment/Reward hacking.md", heading: null, passage: "The reporter learns to lie." },
			similarity: 0.91, closeness: 4.8, percentile: 0.999, sections: 2, more: [] },
		{ a: { path: "Corrigibility.md", heading: null, passage: "Switching off." },
			b: { path: "Alignment/Shutdown problem.md", heading: null, passage: "The off switch." },
			similarity: 0.82, closeness: 3.1, percentile: 0.99, sections: 1, more: [] },
	],
	calibration: { median: 0.5, spread: 0.08, sections: 300 },
};

/** The fake daemon with the idea map's routes; every other request goes to it unchanged. */
class IdeaMapDaemon extends FakeDaemon {
	marked: unknown[] = [];
	asked: string[] = [];

	constructor() {
		super();
		const base = this.fetch;
		(this as { fetch: FakeDaemon["fetch"] }).fetch = async (url, init) => {
			const parsed = new URL(url);
			const answer = (status: number, body: unknown) => ({ status, text: async () => JSON.stringify(body) });
			if (!["/topics", "/duplicates", "/duplicates/not"].includes(parsed.pathname)) return base(url, init);
			this.asked.push(`${init.method} ${parsed.pathname}${parsed.search}`);
			if (init.headers.Authorization !== `Bearer ${this.token}`) return answer(401, { error: "bad token" });
			if (parsed.pathname === "/topics") {
				if (parsed.searchParams.get("note") !== ACTIVE_NOTE) return answer(404, { error: "note: no indexed note" });
				return answer(200, { note: ACTIVE_NOTE, topics: [TOPIC_BROAD, TOPIC_FINE], neighbours: [TOPIC_NEXT] });
			}
			if (parsed.pathname === "/duplicates/not") {
				this.marked.push(JSON.parse(init.body ?? "null"));
				return answer(200, { ok: true });
			}
			return answer(200, DUPLICATES);
		};
	}
}

async function openView(h: Harness, type: string): Promise<HTMLElement> {
	await h.plugin.openSideView(type);
	await settle();
	const leaf = h.workspace.getLeavesOfType(type)[0];
	if (!leaf) throw new Error(`the ${type} view did not open`);
	return leaf.containerEl;
}

describe("The idea map's answers", () => {
	test("are checked before they are drawn", () => {
		const topics = parseNoteTopics({ note: ACTIVE_NOTE, topics: [TOPIC_BROAD, TOPIC_FINE], neighbours: [TOPIC_NEXT] });
		assert.deepEqual(topics.topics.map((t) => [t.level, t.name]), [[0, "agent, shutdown, reward"], [1, "shutdown, utility"]]);
		assert.equal(parseDuplicates(DUPLICATES)[0].b.heading, null);
		assert.throws(() => parseNoteTopics({ note: ACTIVE_NOTE, topics: [{ id: 3 }], neighbours: [] }), MalformedResponse);
		assert.throws(() => parseDuplicates({ duplicates: [{ a: {}, b: {} }] }), MalformedResponse);
	});
});

describe("Topic and Duplicates views", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("the Topic view shows the active note's broad and fine topics, their central notes and neighbours", async () => {
		const daemon = new IdeaMapDaemon();
		h = await startPlugin({ daemon });
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openView(h, "ideaweave-topics");

		assert.deepEqual(texts(view, ".ideaweave-topic-name"), ["agent, shutdown, reward", "shutdown, utility"]);
		assert.deepEqual(texts(view, ".ideaweave-topic-description"), [
			"An agent is corrigible when it lets its overseers correct it.", "The off switch problem."]);
		assert.equal(view.querySelectorAll(".ideaweave-topic-level-0 .ideaweave-topic-note").length, 5);
		assert.match(texts(view, ".ideaweave-topic-level-0 .ideaweave-why")[0], /and 1 more notes/);
		assert.deepEqual(texts(view, ".ideaweave-topic-neighbour-name"), ["daily, log <b>bold</b>"]);
		assert.equal(view.querySelectorAll(".ideaweave-topic-neighbour-name b").length, 0);
		assert.deepEqual(daemon.asked, [`GET /topics?note=${encodeURIComponent(ACTIVE_NOTE)}`]);

		click(view.querySelectorAll(".ideaweave-topic-level-1 .ideaweave-idea-title")[1]);
		click(view.querySelector(".ideaweave-topic-neighbour-name"));
		assert.deepEqual(h.workspace.opened.map((o) => o.linktext), ["Alignment/Shutdown problem", "Daily/2024-03-02"]);
	});

	test("the Topic view says so when the note is not indexed, and when the daemon is down", async () => {
		const daemon = new IdeaMapDaemon();
		h = await startPlugin({ daemon });
		h.workspace.openNote("Alignment/Mesa-optimizers.md");
		const view = await openView(h, "ideaweave-topics");
		assert.match(texts(view, ".ideaweave-message-line")[0], /Mesa-optimizers is not indexed yet/);

		daemon.running = false;
		h.plugin.poller.pollNow();
		await settle();
		await settle();
		const leaf = h.workspace.getLeavesOfType("ideaweave-topics")[0];
		await (leaf.view as unknown as { refresh(): Promise<void> }).refresh();
		assert.match(texts(view, ".ideaweave-message-line")[0], /daemon is not running/);
	});

	test("the Duplicates view shows both passages as text, opens each side, and dismisses a pair", async () => {
		const daemon = new IdeaMapDaemon();
		h = await startPlugin({ daemon });
		const view = await openView(h, "ideaweave-duplicates");

		assert.equal(view.querySelectorAll(".ideaweave-duplicate").length, 2);
		assert.deepEqual(texts(view, ".ideaweave-duplicate-side").slice(0, 2), ["Notes on ELK › Why a reporter would lie", "Reward hacking"]);
		assert.equal(view.querySelectorAll(".ideaweave-passage img").length, 0);
		assert.match(texts(view, ".ideaweave-passage")[0], /<img src=x>/);
		assert.deepEqual(texts(view, ".ideaweave-score"), ["0.91", "0.82"]);

		click(view.querySelectorAll(".ideaweave-duplicate-side")[0]);
		assert.equal(h.workspace.opened.at(-1)?.linktext, "Alignment/Notes on ELK#Why a reporter would lie");

		click(view.querySelectorAll(".ideaweave-not-duplicates")[0]);
		await settle();
		assert.deepEqual(daemon.marked, [{ a: "Alignment/Notes on ELK.md", b: "Alignment/Reward hacking.md", not_duplicates: true }]);
		assert.equal(view.querySelectorAll(".ideaweave-duplicate").length, 1);
		assert.ok(daemon.asked.includes("GET /duplicates?k=30"));
	});
});
