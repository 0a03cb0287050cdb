import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import { OPEN_MESSAGE, pathToOpen } from "../src/map-view";
import { FakeDaemon } from "./fake-daemon";
import { settle } from "./manual-timers";
import { Harness, startPlugin, texts } from "./plugin-harness";

// The daemon's GET /map answers with the page `ideaweave map --html` writes; a page without a script is enough
// here (the page itself is tested in headless Chromium by tests/test_ideamap.py).
const PAGE = "<!doctype html>\n<html><head><title>vault: idea map</title></head><body><canvas id=\"map\"></canvas></body></html>";

/** The fake daemon with GET /map; every other request goes to it unchanged. */
class MapDaemon extends FakeDaemon {
	asked = 0;
	page = PAGE;
	mapStatus = 200;

	constructor() {
		super();
		const base = this.fetch;
		(this as { fetch: FakeDaemon["fetch"] }).fetch = async (url, init) => {
			if (new URL(url).pathname !== "/map") return base(url, init);
			this.asked += 1;
			if (init.headers.Authorization !== `Bearer ${this.token}`) return { status: 401, text: async () => JSON.stringify({ error: "bad token" }) };
			if (this.mapStatus !== 200) return { status: this.mapStatus, text: async () => JSON.stringify({ error: "index is being built" }) };
			return { status: 200, text: async () => this.page };
		};
	}
}

async function openMap(h: Harness): Promise<HTMLElement> {
	h.plugin.commands.get("open-map")!.callback!();
	await settle();
	await settle();
	const leaf = h.workspace.getLeavesOfType("ideaweave-map")[0];
	if (!leaf) throw new Error("the map view did not open");
	return leaf.containerEl;
}

describe("The idea map view", () => {
	let h: Harness;
	afterEach(async () => h?.close());

	test("only an open message naming a note is obeyed", () => {
		assert.equal(pathToOpen({ type: OPEN_MESSAGE, path: "Garden/Compost.md" }), "Garden/Compost.md");
		assert.equal(pathToOpen({ type: "other", path: "Garden/Compost.md" }), null);
		assert.equal(pathToOpen({ type: OPEN_MESSAGE, path: 3 }), null);
		assert.equal(pathToOpen({ type: OPEN_MESSAGE, path: "../../etc/passwd" }), null);
		assert.equal(pathToOpen("ideaweave-map:open"), null);
	});

	test("shows the daemon's page in a sandboxed frame, and a click in the map opens the note", async () => {
		const daemon = new MapDaemon();
		h = await startPlugin({ daemon });
		const view = await openMap(h);
		const frame = view.querySelector("iframe.ideaweave-map-frame") as HTMLIFrameElement | null;
		assert.ok(frame, "no frame");
		assert.equal(frame.getAttribute("sandbox"), "allow-scripts");
		assert.equal(frame.srcdoc, PAGE);
		assert.equal(daemon.asked, 1);

		const window = view.ownerDocument.defaultView!;
		const post = (source: unknown, data: unknown) =>
			window.dispatchEvent(new window.MessageEvent("message", { data, source: source as Window }));
		post(window, { type: OPEN_MESSAGE, path: "Corrigibility.md" }); // not from the map's frame
		assert.equal(h.workspace.opened.length, 0);
		post(frame.contentWindow, { type: OPEN_MESSAGE, path: "Alignment/Shutdown problem.md" });
		assert.deepEqual(h.workspace.opened.map((o) => o.linktext), ["Alignment/Shutdown problem"]);
	});

	test("says why when there is no map to show", async () => {
		const daemon = new MapDaemon();
		daemon.mapStatus = 503;
		h = await startPlugin({ daemon });
		const view = await openMap(h);
		assert.match(texts(view, ".ideaweave-message-line")[0], /still being built/);
		assert.equal(view.querySelector("iframe"), null);

		daemon.mapStatus = 200;
		daemon.page = "{\"error\": \"not a page\"}";
		const leaf = h.workspace.getLeavesOfType("ideaweave-map")[0];
		await (leaf.view as unknown as { refresh(): Promise<void> }).refresh();
		assert.match(texts(view, ".ideaweave-message-line")[0], /did not answer with a page/);
	});
});
