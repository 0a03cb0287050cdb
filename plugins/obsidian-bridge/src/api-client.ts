import {
	DaemonStatus,
	Feedback,
	MAX_PASSAGE_CHARS,
	MalformedResponse,
	PassageSearch,
	PendingWrite,
	RelatedIdea,
	SearchHit,
	parsePendingWrites,
	parseRelated,
	parseSearch,
	parseStatus,
} from "./contract";

/** The part of `fetch` the client uses; the global `fetch` fits, and so does the requestUrl adapter. */
export type FetchLike = (
	url: string,
	init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; text(): Promise<string> }>;

export interface Connection {
	address: string;
	token: string;
}

/**
 * What went wrong, in the terms the UI needs:
 * unreachable: nothing answered (daemon not running, wrong address, timeout);
 * unauthorized: the token was refused; not-found: the daemon does not know the note;
 * not-ready: the index is still being built; malformed: something answered, but not the daemon;
 * rejected: any other error status.
 */
export type ApiFailure = "unreachable" | "unauthorized" | "not-found" | "not-ready" | "malformed" | "rejected";

export class ApiError extends Error {
	constructor(
		readonly failure: ApiFailure,
		message: string,
		readonly status: number | null = null,
	) {
		super(message);
		this.name = "ApiError";
	}
}

const FAILURE_BY_STATUS: Record<number, ApiFailure> = {
	401: "unauthorized",
	403: "unauthorized",
	404: "not-found",
	503: "not-ready",
};

/** "127.0.0.1:8765/" -> "http://127.0.0.1:8765": users paste addresses in many forms. */
export function normalizeAddress(address: string): string {
	const trimmed = address.trim().replace(/\/+$/, "");
	return /^https?:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
}

export class ApiClient {
	constructor(
		private readonly connection: () => Connection,
		private readonly fetchLike: FetchLike,
		private readonly timeoutMs = 10_000,
	) {}

	async status(): Promise<DaemonStatus> {
		return parseStatus(await this.request("GET", "/status"));
	}

	async related(note: string, k: number): Promise<RelatedIdea[]> {
		return parseRelated(await this.request("GET", `/related?note=${encodeURIComponent(note)}&k=${k}`));
	}

	async search(query: string, k: number): Promise<SearchHit[]> {
		return parseSearch(await this.request("GET", `/search?q=${encodeURIComponent(query)}&k=${k}`));
	}

	/** Other notes about a passage, or about a note or one of its sections (never that note itself). */
	async searchByPassage(request: PassageSearch, k: number): Promise<SearchHit[]> {
		const body = { ...request, k };
		// Cut by UTF-16 units, never inside a character (a lone surrogate is not text the daemon accepts).
		if (body.passage !== undefined) body.passage = body.passage.slice(0, MAX_PASSAGE_CHARS).replace(/[\uD800-\uDBFF]$/, "");
		return parseSearch(await this.request("POST", "/search", body));
	}

	async feedback(feedback: Feedback): Promise<void> {
		await this.request("POST", "/feedback", feedback);
	}

	async pause(): Promise<void> {
		await this.request("POST", "/pause");
	}

	async resume(): Promise<void> {
		await this.request("POST", "/resume");
	}

	async pendingWrites(): Promise<PendingWrite[]> {
		return parsePendingWrites(await this.request("GET", "/writes"));
	}

	async ackWrite(id: string, applied: boolean, error: string | null): Promise<void> {
		await this.request("POST", `/writes/${encodeURIComponent(id)}/ack`, { applied, error });
	}

	private async request(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
		const { address, token } = this.connection();
		const url = normalizeAddress(address) + path;
		const headers: Record<string, string> = { Authorization: `Bearer ${token.trim()}` };
		if (body !== undefined) headers["Content-Type"] = "application/json";
		const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
		const exchange = this.fetchLike(url, init).then(async (r) => ({ status: r.status, raw: await r.text() }));
		const { status, raw } = await this.withTimeout(exchange, url);
		if (status >= 400) throw errorFromResponse(status, raw);
		try {
			return raw === "" ? {} : JSON.parse(raw);
		} catch {
			throw new ApiError("malformed", `${url} did not answer with JSON`, status);
		}
	}

	// requestUrl has no timeout of its own; a daemon stuck mid-answer must not stall polling forever.
	private async withTimeout<T>(pending: Promise<T>, url: string): Promise<T> {
		let timer: ReturnType<typeof setTimeout> | undefined;
		const timeout = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new ApiError("unreachable", `${url} timed out`)), this.timeoutMs);
		});
		try {
			return await Promise.race([pending, timeout]);
		} catch (err) {
			if (err instanceof ApiError) throw err;
			throw new ApiError("unreachable", `${url}: ${messageOf(err)}`);
		} finally {
			clearTimeout(timer);
		}
	}
}

function errorFromResponse(status: number, raw: string): ApiError {
	let message = `HTTP ${status}`;
	try {
		const parsed: unknown = JSON.parse(raw);
		if (typeof parsed === "object" && parsed !== null && typeof (parsed as { error?: unknown }).error === "string") {
			message = (parsed as { error: string }).error;
		}
	} catch {
		// Not the daemon's JSON error: keep the status line.
	}
	return new ApiError(FAILURE_BY_STATUS[status] ?? "rejected", message, status);
}

/** Turns any thrown value (including a response that failed its shape check) into an ApiError. */
export function asApiError(err: unknown): ApiError {
	if (err instanceof ApiError) return err;
	if (err instanceof MalformedResponse) return new ApiError("malformed", err.message);
	return new ApiError("rejected", messageOf(err));
}

export function messageOf(err: unknown): string {
	if (err instanceof Error) return err.message;
	return typeof err === "string" ? err : String(err);
}
