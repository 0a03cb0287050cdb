// Shapes of the daemon's local HTTP API (version 1), and the checks that turn
// untrusted JSON into them. Checks are shallow on purpose: they catch a
// daemon of another version or a wrong address, not every possible corruption.

export interface IndexingProgress {
	done: number;
	total: number;
	active: boolean;
}

/** The daemon's start-up pass (or a rescan) while it runs: your edits are handled ahead of it. */
export interface PassProgress {
	phase: string; // "indexing", "embedding" (every note again, after a model change) or "writing"
	done: number;
	total: number;
	rate: number; // notes per second so far
	etaSeconds: number | null;
}

export interface DaemonStatus {
	vault: string;
	notes: number;
	chunks: number;
	indexing: IndexingProgress;
	queue: number;
	paused: boolean;
	privateMode: boolean;
	lastError: string | null;
	bridgeConnected: boolean;
	/** Notes the daemon could not process, each until it changes. */
	failed: NoteFailure[];
	version: string;
	/** The long pass under way, or null (also from daemons that do not report one). */
	longPass: PassProgress | null;
	/** How many threads the daemon embeds with now, and whether it chooses them ("auto"); null: not said. */
	threads: EmbeddingThreads | null;
}

export interface EmbeddingThreads {
	mode: string; // "auto" or "fixed"
	threads: number | null; // null: auto, but nothing embedded yet
}

export interface NoteFailure {
	path: string;
	stage: string;
	reason: string;
}

export interface RelatedIdea {
	path: string;
	title: string;
	score: number;
	heading: string | null;
	link: string;
	passage: string;
	why: string;
	pinned: boolean;
}

export interface SearchHit {
	path: string;
	title: string;
	score: number;
	heading: string | null;
	passage: string;
	why: string;
}

/**
 * What POST /search searches by: a passage (from `note`, which the answer leaves out), or a note
 * itself, or its section under `heading`.
 */
export interface PassageSearch {
	passage?: string;
	note?: string;
	heading?: string;
}

/** The daemon refuses longer passages; a longer selection is searched by its beginning. */
export const MAX_PASSAGE_CHARS = 20_000;

export interface PendingWrite {
	id: string;
	path: string;
	set: Record<string, unknown>;
	remove: string[];
}

export type FeedbackAction = "pin" | "reject" | "clear";

export interface Feedback {
	note: string;
	target: string;
	action: FeedbackAction;
}

/** Raised by the parsers when a response does not have the documented shape. */
export class MalformedResponse extends Error {}

type Json = Record<string, unknown>;

function objectOf(value: unknown, what: string): Json {
	if (typeof value !== "object" || value === null || Array.isArray(value)) {
		throw new MalformedResponse(`${what} is not an object`);
	}
	return value as Json;
}

function arrayOf(value: unknown, what: string): unknown[] {
	if (!Array.isArray(value)) throw new MalformedResponse(`${what} is not a list`);
	return value;
}

function text(value: unknown, fallback = ""): string {
	return typeof value === "string" ? value : fallback;
}

function count(value: unknown): number {
	return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function requiredText(obj: Json, key: string, what: string): string {
	const value = obj[key];
	if (typeof value !== "string" || value === "") {
		throw new MalformedResponse(`${what} has no "${key}"`);
	}
	return value;
}

function headingOf(value: unknown): string | null {
	return typeof value === "string" && value !== "" ? value : null;
}

export function parseStatus(body: unknown): DaemonStatus {
	const obj = objectOf(body, "status");
	if (typeof obj.notes !== "number") throw new MalformedResponse('status has no "notes"');
	const indexing = objectOf(obj.indexing ?? {}, "status.indexing");
	return {
		vault: text(obj.vault),
		notes: count(obj.notes),
		chunks: count(obj.chunks),
		indexing: {
			done: count(indexing.done),
			total: count(indexing.total),
			active: indexing.active === true,
		},
		queue: count(obj.queue),
		paused: obj.paused === true,
		privateMode: obj.private_mode === true,
		lastError: typeof obj.last_error === "string" ? obj.last_error : null,
		bridgeConnected: obj.bridge_connected === true,
		failed: Array.isArray(obj.failed) ? obj.failed.flatMap(noteFailure) : [],
		version: text(obj.version),
		longPass: passProgress(obj.pass),
		threads: embeddingThreads(obj.threads),
	};
}

function embeddingThreads(value: unknown): EmbeddingThreads | null {
	if (typeof value !== "object" || value === null) return null;
	const t = value as Record<string, unknown>;
	return { mode: text(t.mode), threads: typeof t.threads === "number" ? count(t.threads) : null };
}

function passProgress(value: unknown): PassProgress | null {
	if (typeof value !== "object" || value === null) return null;
	const p = value as Record<string, unknown>;
	if (typeof p.done !== "number" || typeof p.total !== "number") return null;
	const eta = typeof p.eta_seconds === "number" && p.eta_seconds >= 0 ? p.eta_seconds : null;
	return { phase: text(p.phase), done: count(p.done), total: count(p.total), rate: typeof p.rate === "number" ? p.rate : 0, etaSeconds: eta };
}

function noteFailure(item: unknown): NoteFailure[] {
	if (typeof item !== "object" || item === null) return [];
	const f = item as Record<string, unknown>;
	return typeof f.path === "string" ? [{ path: f.path, stage: text(f.stage), reason: text(f.reason) }] : [];
}

export function parseRelated(body: unknown): RelatedIdea[] {
	const obj = objectOf(body, "related response");
	return arrayOf(obj.related, "related").map((item) => {
		const idea = objectOf(item, "related idea");
		const path = requiredText(idea, "path", "related idea");
		const heading = headingOf(idea.heading);
		return {
			path,
			title: text(idea.title, titleFromPath(path)),
			score: count(idea.score),
			heading,
			link: text(idea.link, wikilinkFor(path, heading)),
			passage: text(idea.passage),
			why: text(idea.why),
			pinned: idea.pinned === true,
		};
	});
}

export function parseSearch(body: unknown): SearchHit[] {
	const obj = objectOf(body, "search response");
	return arrayOf(obj.results, "results").map((item) => {
		const hit = objectOf(item, "search result");
		const path = requiredText(hit, "path", "search result");
		return {
			path,
			title: text(hit.title, titleFromPath(path)),
			score: count(hit.score),
			heading: headingOf(hit.heading),
			passage: text(hit.passage),
			why: text(hit.why),
		};
	});
}

export function parsePendingWrites(body: unknown): PendingWrite[] {
	const obj = objectOf(body, "writes response");
	return arrayOf(obj.pending, "pending").map((item) => {
		const write = objectOf(item, "pending write");
		const remove = arrayOf(write.remove ?? [], "write.remove");
		return {
			id: requiredText(write, "id", "pending write"),
			path: requiredText(write, "path", "pending write"),
			set: objectOf(write.set ?? {}, "write.set"),
			remove: remove.filter((key): key is string => typeof key === "string"),
		};
	});
}

/** "folder/Corrigibility.md" -> "Corrigibility" (what Obsidian shows as the note's name). */
export function titleFromPath(path: string): string {
	const name = path.split("/").pop() ?? path;
	return name.replace(/\.md$/i, "");
}

export function wikilinkFor(path: string, heading: string | null): string {
	return `[[${linktextFor(path, heading)}]]`;
}

/** The link text Obsidian resolves: the path without ".md", then "#heading" if any. */
export function linktextFor(path: string, heading: string | null): string {
	const target = path.replace(/\.md$/i, "");
	return heading ? `${target}#${heading}` : target;
}

/** "[[b#Shutdown problem|alias]]" -> "b#Shutdown problem"; null when it is no wikilink. */
export function linktextFromWikilink(link: string): string | null {
	const match = /^\s*!?\[\[([^\]|]+)(?:\|[^\]]*)?\]\]\s*$/.exec(link);
	return match ? match[1].trim() : null;
}
