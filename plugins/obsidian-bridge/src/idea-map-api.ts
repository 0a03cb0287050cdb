// The idea map's part of the daemon's API: the active note's topics (GET /topics?note=), the vault's
// duplicates (GET /duplicates), the user's "not duplicates" (POST /duplicates/not) and the map's page
// (GET /map), with the checks that turn their untrusted answers into the shapes the views draw.

import { ApiError, Connection, FetchLike, messageOf, normalizeAddress } from "./api-client";
import { MalformedResponse } from "./contract";

export interface Topic {
	id: string;
	name: string;
	level: number;
	parent: string | null;
	/** Vault-relative paths, most central first. */
	notes: string[];
	description: string;
	central: string | null;
	neighbours: string[];
}

export interface NoteTopics {
	note: string;
	/** The note's topic at each level, broadest first. */
	topics: Topic[];
	/** The topics next to those, most joined first. */
	neighbours: Topic[];
}

export interface Passage {
	path: string;
	heading: string | null;
	passage: string;
}

export interface Duplicate {
	a: Passage;
	b: Passage;
	similarity: number;
	/** How far the pair stands above the vault's ordinary close neighbours (robust standard deviations). */
	closeness: number;
	sections: number;
}

type Json = Record<string, unknown>;

function object(value: unknown, what: string): Json {
	if (typeof value !== "object" || value === null || Array.isArray(value)) throw new MalformedResponse(`${what} is not an object`);
	return value as Json;
}

function list(value: unknown, what: string): unknown[] {
	if (!Array.isArray(value)) throw new MalformedResponse(`${what} is not a list`);
	return value;
}

function text(value: unknown, what: string): string {
	if (typeof value !== "string") throw new MalformedResponse(`${what} is not text`);
	return value;
}

function textOrNull(value: unknown, what: string): string | null {
	return value === null || value === undefined ? null : text(value, what);
}

function number(value: unknown, what: string): number {
	if (typeof value !== "number" || !Number.isFinite(value)) throw new MalformedResponse(`${what} is not a number`);
	return value;
}

export function parseTopic(value: unknown): Topic {
	const t = object(value, "a topic");
	return {
		id: text(t.id, "topic id"),
		name: text(t.name, "topic name"),
		level: number(t.level, "topic level"),
		parent: textOrNull(t.parent, "topic parent"),
		notes: list(t.notes, "topic notes").map((n) => text(n, "a topic's note")),
		description: typeof t.description === "string" ? t.description : "",
		central: textOrNull(t.central, "topic central note"),
		neighbours: Array.isArray(t.neighbours) ? t.neighbours.map((n) => text(n, "a neighbouring topic")) : [],
	};
}

export function parseNoteTopics(value: unknown): NoteTopics {
	const body = object(value, "the topics answer");
	return {
		note: text(body.note, "note"),
		topics: list(body.topics, "topics").map(parseTopic),
		neighbours: list(body.neighbours, "neighbours").map(parseTopic),
	};
}

function parsePassage(value: unknown): Passage {
	const p = object(value, "a passage");
	return { path: text(p.path, "passage path"), heading: textOrNull(p.heading, "passage heading"), passage: text(p.passage, "passage") };
}

export function parseDuplicates(value: unknown): Duplicate[] {
	return list(object(value, "the duplicates answer").duplicates, "duplicates").map((entry) => {
		const d = object(entry, "a duplicate");
		return {
			a: parsePassage(d.a),
			b: parsePassage(d.b),
			similarity: number(d.similarity, "similarity"),
			closeness: number(d.closeness, "closeness"),
			sections: number(d.sections, "sections"),
		};
	});
}

const FAILURE_BY_STATUS: Record<number, ApiError["failure"]> = { 401: "unauthorized", 403: "unauthorized", 404: "not-found", 503: "not-ready" };

/** Asks the daemon for topics and duplicates, with the same connection, token and timeout as the rest of the plugin. */
export class IdeaMapApi {
	constructor(
		private readonly connection: () => Connection,
		private readonly fetchLike: FetchLike,
		private readonly timeoutMs = 30_000, // topics and duplicates are computed on the first request after a change
	) {}

	async noteTopics(note: string): Promise<NoteTopics> {
		return parseNoteTopics(await this.request("GET", `/topics?note=${encodeURIComponent(note)}`));
	}

	async duplicates(k: number): Promise<Duplicate[]> {
		return parseDuplicates(await this.request("GET", `/duplicates?k=${k}`));
	}

	async markNotDuplicates(a: string, b: string): Promise<void> {
		await this.request("POST", "/duplicates/not", { a, b, not_duplicates: true });
	}

	/** The idea map's page (GET /map): one self-contained HTML document. */
	async mapPage(): Promise<string> {
		// The first map after a change computes the topics and lays them out: up to a minute on a large vault.
		const { url, status, raw } = await this.exchange("GET", "/map", undefined, Math.max(this.timeoutMs, 120_000));
		if (status >= 400) throw this.refusal(status, raw);
		if (!/^\s*<!doctype html>/i.test(raw)) throw new ApiError("malformed", `${url} did not answer with a page`, status);
		return raw;
	}

	private async request(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
		const { url, status, raw } = await this.exchange(method, path, body);
		if (status >= 400) throw this.refusal(status, raw);
		try {
			return raw === "" ? {} : JSON.parse(raw);
		} catch {
			throw new ApiError("malformed", `${url} did not answer with JSON`, status);
		}
	}

	private async exchange(
		method: "GET" | "POST",
		path: string,
		body?: unknown,
		timeoutMs = this.timeoutMs,
	): Promise<{ url: string; status: number; raw: string }> {
		const { address, token } = this.connection();
		const url = normalizeAddress(address) + path;
		const headers: Record<string, string> = { Authorization: `Bearer ${token.trim()}` };
		if (body !== undefined) headers["Content-Type"] = "application/json";
		let timer: ReturnType<typeof setTimeout> | undefined;
		const timeout = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new ApiError("unreachable", `${url} timed out`)), timeoutMs);
		});
		try {
			const answer = this.fetchLike(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
			const { status, raw } = await Promise.race([answer.then(async (r) => ({ status: r.status, raw: await r.text() })), timeout]);
			return { url, status, raw };
		} catch (err) {
			throw err instanceof ApiError ? err : new ApiError("unreachable", `${url}: ${messageOf(err)}`);
		} finally {
			clearTimeout(timer);
		}
	}

	/** The daemon's refusal, with its one-line reason when it gave one. */
	private refusal(status: number, raw: string): ApiError {
		let error: unknown;
		try {
			const parsed: unknown = JSON.parse(raw);
			error = typeof parsed === "object" && parsed !== null ? (parsed as { error?: unknown }).error : undefined;
		} catch {
			error = undefined;
		}
		return new ApiError(FAILURE_BY_STATUS[status] ?? "rejected", typeof error === "string" ? error : `HTTP ${status}`, status);
	}
}
