import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiClient, ApiError, FetchLike, normalizeAddress } from "../src/api-client";
import { requestUrlFetch } from "../src/request-url-fetch";
import { FakeDaemon } from "./fake-daemon";

function clientFor(daemon: FakeDaemon, fetch: FetchLike = daemon.fetch, address = "127.0.0.1:8765/"): ApiClient {
	return new ApiClient(() => ({ address, token: daemon.token }), fetch);
}

async function failureOf(promise: Promise<unknown>): Promise<ApiError> {
	try {
		await promise;
	} catch (err) {
		assert.ok(err instanceof ApiError, `expected an ApiError, got ${String(err)}`);
		return err;
	}
	assert.fail("expected the request to fail");
}

describe("ApiClient", () => {
	test("encodes parameters, sends the bearer token and parses the answers", async () => {
		const daemon = new FakeDaemon();
		daemon.related.set("Reading/Notes & ideas #2.md", []);
		const client = clientFor(daemon);

		const status = await client.status();
		assert.equal(status.notes, 749);
		assert.equal(status.indexing.active, false);
		assert.deepEqual(await client.related("Reading/Notes & ideas #2.md", 5), []);
		const hits = await client.search("off switch & shutdown", 20);
		assert.equal(hits[0].heading, "Off-switch game");

		const [, related, search] = daemon.requests;
		assert.deepEqual(related.params, { note: "Reading/Notes & ideas #2.md", k: "5" });
		assert.deepEqual(search.params, { q: "off switch & shutdown", k: "20" });
		assert.ok(daemon.requests.every((r) => r.authorization === `Bearer ${daemon.token}`));
	});

	test("maps each way of failing to what the UI shows", async () => {
		const daemon = new FakeDaemon();
		const client = clientFor(daemon);
		assert.equal((await failureOf(client.related("nope.md", 10))).failure, "not-found");

		const wrongToken = new ApiClient(() => ({ address: "127.0.0.1:8765", token: "nope" }), daemon.fetch);
		const refused = await failureOf(wrongToken.status());
		assert.equal(refused.failure, "unauthorized");
		assert.equal(refused.message, "missing or bad token");

		const notReady: FetchLike = async () => ({ status: 503, text: async () => '{"error": "index not ready"}' });
		assert.equal((await failureOf(clientFor(daemon, notReady).related("a.md", 3))).failure, "not-ready");

		const notTheDaemon: FetchLike = async () => ({ status: 200, text: async () => "<html>hello</html>" });
		assert.equal((await failureOf(clientFor(daemon, notTheDaemon).status())).failure, "malformed");

		daemon.running = false;
		assert.equal((await failureOf(client.status())).failure, "unreachable");
	});

	test("a daemon that never answers times out as unreachable", async () => {
		const hanging: FetchLike = () => new Promise(() => {});
		const client = new ApiClient(() => ({ address: "127.0.0.1:8765", token: "t" }), hanging, 20);
		assert.equal((await failureOf(client.status())).failure, "unreachable");
	});

	test("the requestUrl adapter sends JSON bodies and reads error statuses without throwing", async () => {
		const daemon = new FakeDaemon();
		const client = clientFor(daemon, requestUrlFetch(daemon.requestUrl));

		await client.feedback({ note: "Corrigibility.md", target: "Alignment/Notes on ELK.md", action: "pin" });
		await client.ackWrite("w 1/2", true, null);
		assert.equal((await failureOf(client.related("nope.md", 10))).failure, "not-found");

		const [feedback, ack] = daemon.requests;
		assert.deepEqual(feedback.body, { note: "Corrigibility.md", target: "Alignment/Notes on ELK.md", action: "pin" });
		assert.equal(ack.path, "/writes/w%201%2F2/ack");
		assert.deepEqual(ack.body, { applied: true, error: null });
	});

	test("addresses are accepted in the forms people paste", () => {
		assert.equal(normalizeAddress(" 127.0.0.1:8765/ "), "http://127.0.0.1:8765");
		assert.equal(normalizeAddress("http://localhost:9000"), "http://localhost:9000");
		assert.equal(normalizeAddress("https://box.local:8765//"), "https://box.local:8765");
	});
});
