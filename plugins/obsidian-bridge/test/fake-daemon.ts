// A fake of the daemon's HTTP API as a fetch-like function: it answers from
// memory, checks the token, and records every request so tests can assert on
// what the plugin sent.

import type { FetchLike } from "../src/api-client";
import type { RequestUrlParam, RequestUrlResponse } from "./obsidian-stub";
import { NOTE_PATHS, PASSAGE_HITS, READY_STATUS, RELATED_TO_CORRIGIBILITY, RelatedIdeaJson, SEARCH_HITS } from "./fixtures";

export interface RecordedRequest {
	method: string;
	path: string;
	params: Record<string, string>;
	body: unknown;
	authorization: string | undefined;
}

export interface WriteJson {
	id: string;
	path: string;
	set: Record<string, unknown>;
	remove: string[];
}

type Answer = { status: number; body: unknown };

export class FakeDaemon {
	running = true;
	token = "secret-token";
	status: Record<string, unknown> = structuredClone(READY_STATUS);
	related = new Map<string, RelatedIdeaJson[]>([["Corrigibility.md", structuredClone(RELATED_TO_CORRIGIBILITY)]]);
	searchHits = structuredClone(SEARCH_HITS);
	/** Answers for particular queries (any other query gets `searchHits`). */
	searchAnswers = new Map<string, typeof SEARCH_HITS>();
	passageHits = structuredClone(PASSAGE_HITS);
	/** When true, GET /search waits in `heldSearches` until a test releases it (a slow answer). */
	holdSearches = false;
	readonly heldSearches: Array<{ q: string; release: () => void }> = [];
	pending: WriteJson[] = [];
	readonly acks: Array<{ id: string; applied: boolean; error: string | null }> = [];
	readonly requests: RecordedRequest[] = [];
	/** Every attempt to connect, answered or not. */
	attempts = 0;
	/** The next this-many acks are lost on the way (the connection drops); the daemon never sees them. */
	dropAcks = 0;
	/** Called when an ack arrives, before it is answered. */
	onAck: (id: string) => void = () => {};

	readonly fetch: FetchLike = async (url, init) => {
		const parsed = new URL(url);
		if (this.holdSearches && init.method === "GET" && parsed.pathname === "/search") {
			const q = parsed.searchParams.get("q") ?? "";
			await new Promise<void>((release) => this.heldSearches.push({ q, release }));
		}
		const answer = this.answer(url, init.method, init.headers, init.body);
		return { status: answer.status, text: async () => JSON.stringify(answer.body) };
	};

	/** The same daemon behind the stub's requestUrl (as the plugin reaches it in the app). */
	readonly requestUrl = async (request: RequestUrlParam): Promise<RequestUrlResponse> => {
		const body = typeof request.body === "string" ? request.body : undefined;
		const answer = this.answer(request.url, request.method ?? "GET", request.headers ?? {}, body);
		const text = JSON.stringify(answer.body);
		return { status: answer.status, headers: {}, arrayBuffer: new ArrayBuffer(0), json: answer.body, text };
	};

	requestsTo(path: string): RecordedRequest[] {
		return this.requests.filter((r) => r.path === path);
	}

	private answer(url: string, method: string, headers: Record<string, string>, rawBody?: string): Answer {
		this.attempts += 1;
		if (!this.running) throw new TypeError("fetch failed: connect ECONNREFUSED 127.0.0.1:8765");
		const parsed = new URL(url);
		const body = rawBody === undefined ? undefined : JSON.parse(rawBody);
		const params = Object.fromEntries(parsed.searchParams);
		const authorization = headers.Authorization;
		this.requests.push({ method, path: parsed.pathname, params, body, authorization });
		if (authorization !== `Bearer ${this.token}`) return { status: 401, body: { error: "missing or bad token" } };
		return this.route(method, parsed.pathname, params, body);
	}

	private route(method: string, path: string, params: Record<string, string>, body: any): Answer {
		const ack = /^\/writes\/([^/]+)\/ack$/.exec(path);
		if (method === "POST" && ack) return this.ackWrite(decodeURIComponent(ack[1]), body);
		switch (`${method} ${path}`) {
			case "GET /status":
				return ok(this.status);
			case "GET /related": {
				const ideas = this.related.get(params.note);
				if (!ideas) return { status: 404, body: { error: `unknown note: ${params.note}` } };
				return ok({ note: params.note, related: ideas.slice(0, Number(params.k ?? 10)) });
			}
			case "GET /search": {
				const hits = this.searchAnswers.get(params.q) ?? this.searchHits;
				return ok({ query: params.q, results: hits.slice(0, Number(params.k ?? 20)) });
			}
			case "POST /search":
				return this.searchByPassage(body);
			case "POST /feedback":
				return this.feedback(body);
			case "GET /writes":
				return ok({ pending: this.pending });
			case "POST /pause":
				this.status.paused = true;
				return ok({ paused: true });
			case "POST /resume":
				this.status.paused = false;
				return ok({ paused: false });
			default:
				return { status: 404, body: { error: `no route ${method} ${path}` } };
		}
	}

	private searchByPassage(body: { passage?: string; note?: string; heading?: string; k?: number }): Answer {
		if (body.note !== undefined && !NOTE_PATHS.includes(body.note)) {
			return { status: 404, body: { error: `note: no indexed note ${body.note}` } };
		}
		if (body.passage === undefined && body.note === undefined) return { status: 400, body: { error: "passage: missing" } };
		const hits = this.passageHits.filter((hit) => hit.path !== body.note).slice(0, body.k ?? 20);
		return ok({ query: body.passage ?? body.note, results: hits });
	}

	private feedback(body: { note: string; target: string; action: string }): Answer {
		const ideas = this.related.get(body.note);
		if (!ideas) return { status: 404, body: { error: `unknown note: ${body.note}` } };
		if (body.action === "reject") {
			this.related.set(body.note, ideas.filter((idea) => idea.path !== body.target));
		} else {
			for (const idea of ideas) if (idea.path === body.target) idea.pinned = body.action === "pin";
		}
		return ok({ ok: true });
	}

	private ackWrite(id: string, body: { applied: boolean; error: string | null }): Answer {
		if (this.dropAcks > 0) {
			this.dropAcks -= 1;
			throw new TypeError("socket hang up");
		}
		this.onAck(id);
		this.acks.push({ id, applied: body.applied, error: body.error });
		this.pending = this.pending.filter((write) => write.id !== id);
		return ok({ ok: true });
	}
}

function ok(body: unknown): Answer {
	return { status: 200, body };
}
