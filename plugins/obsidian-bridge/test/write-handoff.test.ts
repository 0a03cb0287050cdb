import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { AppliedWriteIds, applyWriteToFrontmatter } from "../src/write-handoff";
import { FakeDaemon, WriteJson } from "./fake-daemon";
import { Harness, MANIFEST, startPlugin } from "./plugin-harness";

const TO_CORRIGIBILITY: WriteJson = {
	id: "w-101",
	path: "Corrigibility.md",
	set: {
		related: ["[[Alignment/Shutdown problem#Utility indifference]]", "[[Alignment/Notes on ELK]]"],
		summary: "What it takes for an agent to accept correction and shutdown.",
	},
	remove: [],
};

const TO_ELK: WriteJson = {
	id: "w-102",
	path: "Alignment/Notes on ELK.md",
	set: { related: ["[[Corrigibility]]"] },
	remove: ["summary"],
};

function savedIds(h: Harness): string[] {
	return (h.app.pluginData.get(MANIFEST.id) as { appliedWriteIds: string[] }).appliedWriteIds;
}

describe("write hand-off", () => {
	const running: Harness[] = [];
	afterEach(async () => {
		for (const h of running.splice(0)) await h.close();
	});

	async function start(daemon: FakeDaemon, pluginData?: unknown): Promise<Harness> {
		const h = await startPlugin({ daemon, pluginData });
		running.push(h);
		return h;
	}

	test("applies each write exactly once, even when an ack is lost and the write offered again", async () => {
		const daemon = new FakeDaemon();
		const h = await start(daemon);
		h.fileManager.frontmatter.set("Alignment/Notes on ELK.md", { summary: "An old summary.", tags: ["elk"] });
		const idsSavedAtAck: string[][] = [];
		daemon.onAck = () => idsSavedAtAck.push([...savedIds(h)]);
		daemon.pending = [structuredClone(TO_CORRIGIBILITY), structuredClone(TO_ELK)];
		daemon.dropAcks = 1;

		await h.timers.advance(3_000);

		assert.deepEqual(h.fileManager.edits, ["Corrigibility.md", "Alignment/Notes on ELK.md"]);
		assert.deepEqual(daemon.pending.map((w) => w.id), ["w-101"], "the lost ack leaves w-101 pending");

		await h.timers.advance(3_000);

		assert.deepEqual(h.fileManager.edits, ["Corrigibility.md", "Alignment/Notes on ELK.md"], "no second apply");
		assert.deepEqual(daemon.acks, [
			{ id: "w-102", applied: true, error: null },
			{ id: "w-101", applied: true, error: null },
		]);
		assert.deepEqual(daemon.pending, []);
		assert.deepEqual(h.fileManager.frontmatter.get("Corrigibility.md"), TO_CORRIGIBILITY.set);
		assert.deepEqual(h.fileManager.frontmatter.get("Alignment/Notes on ELK.md"), {
			tags: ["elk"],
			related: ["[[Corrigibility]]"],
		});
		// Every ack left after the id it acknowledges was saved.
		assert.deepEqual(idsSavedAtAck, [
			["w-101", "w-102"],
			["w-101", "w-102"],
		]);
	});

	test("an id applied before a restart is acked again, not applied again", async () => {
		const daemon = new FakeDaemon();
		daemon.pending = [structuredClone(TO_CORRIGIBILITY)];
		daemon.dropAcks = 1;
		const first = await start(daemon);
		assert.deepEqual(first.fileManager.edits, ["Corrigibility.md"]);
		const saved = first.app.pluginData.get(MANIFEST.id);
		await first.close();
		running.splice(running.indexOf(first), 1);

		const second = await start(daemon, saved);

		assert.deepEqual(second.fileManager.edits, []);
		assert.deepEqual(daemon.acks, [{ id: "w-101", applied: true, error: null }]);
		assert.deepEqual(daemon.pending, []);
	});

	test("a write to a missing note or unreadable frontmatter is refused and not remembered", async () => {
		const daemon = new FakeDaemon();
		const h = await start(daemon);
		h.fileManager.broken.add("Alignment/Reward hacking.md");
		daemon.pending = [
			{ id: "w-201", path: "Deleted note.md", set: { summary: "x" }, remove: [] },
			{ id: "w-202", path: "Alignment/Reward hacking.md", set: { summary: "y" }, remove: [] },
		];
		await h.timers.advance(3_000);

		assert.deepEqual(h.fileManager.edits, []);
		assert.deepEqual(daemon.acks, [
			{ id: "w-201", applied: false, error: "no note at Deleted note.md in the vault" },
			{ id: "w-202", applied: false, error: "Alignment/Reward hacking.md: can't parse frontmatter" },
		]);
		assert.deepEqual(savedIds(h), []);
	});

	test("with writing through Obsidian turned off, /writes is never polled", async () => {
		const daemon = new FakeDaemon();
		daemon.pending = [structuredClone(TO_CORRIGIBILITY)];
		const h = await start(daemon, {
			settings: { address: "http://127.0.0.1:8765", token: daemon.token, relatedCount: 10, applyWrites: false },
			appliedWriteIds: [],
		});
		await h.timers.advance(10_000);

		assert.ok(daemon.requestsTo("/status").length >= 3);
		assert.equal(daemon.requestsTo("/writes").length, 0);
		assert.deepEqual(h.fileManager.edits, []);
	});

	test("the remembered ids are capped at the most recent thousand", async () => {
		const stored = Array.from({ length: 1200 }, (_, i) => `w-${i}`);
		const daemon = new FakeDaemon();
		daemon.pending = [{ ...structuredClone(TO_CORRIGIBILITY), id: "w-new" }];
		const h = await start(daemon, {
			settings: { address: "127.0.0.1:8765", token: daemon.token },
			appliedWriteIds: stored,
		});

		const ids = savedIds(h);
		assert.equal(ids.length, 1000);
		assert.equal(ids[0], "w-201");
		assert.equal(ids.at(-1), "w-new");
	});
});

describe("AppliedWriteIds", () => {
	test("forgets the oldest ids beyond its capacity; a repeated id counts as new", () => {
		const ids = new AppliedWriteIds(["a", "b"], 3);
		ids.add("c");
		ids.add("a");
		ids.add("d");
		assert.deepEqual(ids.toArray(), ["c", "a", "d"]);
		assert.equal(ids.has("b"), false);
	});
});

describe("applyWriteToFrontmatter", () => {
	test("sets and removes only the keys the write names", () => {
		const frontmatter: Record<string, unknown> = { tags: ["a"], summary: "old", aliases: ["x"] };
		applyWriteToFrontmatter(frontmatter, { id: "w", path: "a.md", set: { related: ["[[b]]"] }, remove: ["summary"] });
		assert.deepEqual(frontmatter, { tags: ["a"], aliases: ["x"], related: ["[[b]]"] });
	});
});
