import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { FakeDaemon } from "./fake-daemon";
import { ACTIVE_NOTE } from "./fixtures";
import { Harness, openRelatedView, startPlugin, statusBarText, texts } from "./plugin-harness";

describe("when the daemon is not running", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	async function startWithoutDaemon(): Promise<Harness> {
		const daemon = new FakeDaemon();
		daemon.running = false;
		return startPlugin({ daemon });
	}

	test("the view says so and how to start it; the status bar says so", async () => {
		h = await startWithoutDaemon();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		assert.deepEqual(texts(view, ".ideaweave-message-title"), ["The ideaweave daemon is not running"]);
		assert.deepEqual(texts(view, ".ideaweave-command"), ["ideaweave watch"]);
		assert.match(texts(view, ".ideaweave-message-footnote")[0], /http:\/\/127\.0\.0\.1:8765/);
		assert.equal(statusBarText(h.app), "ideaweave: daemon not running");
		assert.equal(h.daemon.requestsTo("/related").length, 0, "a daemon known to be down is not asked");
	});

	test("one warning for the change of state, however many polls fail; polls back off", async () => {
		h = await startWithoutDaemon();
		const pollTimes: number[] = [];
		while (h.timers.now < 100_000) {
			const before = h.daemon.attempts;
			await h.timers.advance(1_000);
			if (h.daemon.attempts > before) pollTimes.push(h.timers.now);
		}
		const gaps = pollTimes.slice(1).map((t, i) => t - pollTimes[i]);

		assert.equal(h.warnings.length, 1);
		assert.match(h.warnings[0], /no daemon at http:\/\/127\.0\.0\.1:8765.*ideaweave watch/);
		assert.deepEqual(gaps, [6_000, 12_000, 24_000, 30_000]);
	});

	test("when the daemon starts, status bar and view recover on their own", async () => {
		h = await startWithoutDaemon();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		h.daemon.running = true;
		h.daemon.status.indexing = { done: 12, total: 40, active: true };

		await h.timers.advance(3_000 + 300);

		assert.equal(statusBarText(h.app), "ideaweave: indexing 12/40");
		assert.equal(texts(view, ".ideaweave-idea-title").length, 4);
		assert.equal(h.warnings.length, 1, "recovery is not a warning");

		h.daemon.status.indexing = { done: 40, total: 40, active: false };
		await h.timers.advance(3_000);
		assert.equal(statusBarText(h.app), "ideaweave: ready");

		h.daemon.status.paused = true;
		await h.timers.advance(3_000);
		assert.equal(statusBarText(h.app), "ideaweave: paused");
	});

	test("the start-up pass shows its progress and time left, and the bar returns to ready after it", async () => {
		h = await startWithoutDaemon();
		h.daemon.running = true;
		h.daemon.status.pass = { phase: "writing", done: 1200, total: 10003, rate: 3.1, eta_seconds: 2840 };
		await h.timers.advance(3_000 + 300);
		assert.equal(statusBarText(h.app), "ideaweave: writing 1200/10003 · 47 min left");

		h.daemon.status.pass = { phase: "writing", done: 10000, total: 10003, rate: 3.1, eta_seconds: 1 };
		await h.timers.advance(3_000);
		assert.equal(statusBarText(h.app), "ideaweave: writing 10000/10003 · 1 s left");

		h.daemon.status.pass = null;
		await h.timers.advance(3_000);
		assert.equal(statusBarText(h.app), "ideaweave: ready");
	});

	test("the indexing phase of the start-up pass shows its progress too, and the tooltip the threads", async () => {
		h = await startWithoutDaemon();
		h.daemon.running = true;
		h.daemon.status.indexing = { done: 300, total: 10003, active: true };
		h.daemon.status.pass = { phase: "indexing", done: 300, total: 10003, rate: 6.5, eta_seconds: 1493 };
		h.daemon.status.threads = { mode: "auto", threads: 2, max_threads: 2, trials: 3, switches: 1 };
		await h.timers.advance(3_000 + 300);
		assert.equal(statusBarText(h.app), "ideaweave: indexing 300/10003 · 25 min left");
		const tooltip = h.app.statusBarEl.querySelector(".ideaweave-status")?.getAttribute("aria-label") ?? "";
		assert.match(tooltip, /start-up pass: indexing 300\/10003 notes at 6\.5 notes\/s; notes you save go first/);
		assert.match(tooltip, /embedding on 2 threads \(auto\)/);
	});

	test("a refused token is a state of its own, in the view and the status bar", async () => {
		const daemon = new FakeDaemon();
		daemon.token = "rotated";
		h = await startPlugin({
			daemon,
			pluginData: { settings: { token: "stale" }, appliedWriteIds: [] },
		});
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		assert.equal(statusBarText(h.app), "ideaweave: token rejected");
		assert.deepEqual(texts(view, ".ideaweave-message-title"), ["The daemon refused the token"]);
		assert.equal(h.warnings.length, 1);
		assert.equal(daemon.requestsTo("/writes").length, 0);
	});

	test("a daemon that goes away while Obsidian runs is noticed by the next poll", async () => {
		h = await startPlugin();
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		assert.equal(statusBarText(h.app), "ideaweave: ready");

		h.daemon.running = false;
		await h.timers.advance(3_000 + 300);

		assert.equal(statusBarText(h.app), "ideaweave: daemon not running");
		assert.deepEqual(texts(view, ".ideaweave-message-title"), ["The ideaweave daemon is not running"]);
		assert.equal(h.warnings.length, 1);
	});
});
