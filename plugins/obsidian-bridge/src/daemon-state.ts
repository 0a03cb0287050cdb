import { ApiError } from "./api-client";
import { DaemonStatus } from "./contract";

/** What the plugin knows about the daemon after its last /status poll. */
export type DaemonState =
	| { kind: "connecting" }
	| { kind: "up"; status: DaemonStatus }
	| { kind: "down"; reason: string }
	| { kind: "unauthorized"; reason: string }
	| { kind: "failing"; reason: string };

export function stateFromError(error: ApiError): DaemonState {
	switch (error.failure) {
		case "unreachable":
			return { kind: "down", reason: error.message };
		case "unauthorized":
			return { kind: "unauthorized", reason: error.message };
		default:
			return { kind: "failing", reason: error.message };
	}
}

export function statusBarText(state: DaemonState): string {
	switch (state.kind) {
		case "connecting":
			return "ideaweave: connecting…";
		case "down":
			return "ideaweave: daemon not running";
		case "unauthorized":
			return "ideaweave: token rejected";
		case "failing":
			return "ideaweave: error";
		case "up": {
			// Paused first: it is the state a user can forget they chose.
			const { paused, indexing, longPass } = state.status;
			if (paused) return "ideaweave: paused";
			if (longPass) {
				const left = longPass.etaSeconds === null ? "" : ` · ${durationText(longPass.etaSeconds)} left`;
				return `ideaweave: ${longPass.phase} ${longPass.done}/${longPass.total}${left}`;
			}
			if (indexing.active) return `ideaweave: indexing ${indexing.done}/${indexing.total}`;
			return "ideaweave: ready";
		}
	}
}

/** "40 s", "47 min", "1.5 h": how long the daemon's pass has left, as the CLI says it. */
export function durationText(seconds: number): string {
	if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
	if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
	return `${(seconds / 3600).toFixed(1)} h`;
}

/** The longer line shown when hovering the status bar item. */
export function statusBarTooltip(state: DaemonState, address: string): string {
	switch (state.kind) {
		case "connecting":
			return `Contacting the ideaweave daemon at ${address}`;
		case "down":
			return `No ideaweave daemon answers at ${address}. Start it with: ideaweave watch`;
		case "unauthorized":
			return "The daemon refused the token. Copy it from `ideaweave token` into the plugin settings.";
		case "failing":
			return `ideaweave: ${state.reason}`;
		case "up": {
			const s = state.status;
			const parts = [`${s.notes} notes`, `${s.chunks} chunks`];
			if (s.longPass) {
				const p = s.longPass;
				parts.push(`start-up pass: ${p.phase} ${p.done}/${p.total} notes at ${p.rate.toFixed(1)} notes/s; notes you save go first`);
			}
			if (s.threads?.threads) {
				const t = s.threads;
				parts.push(`embedding on ${t.threads} thread${t.threads === 1 ? "" : "s"}${t.mode === "auto" ? " (auto)" : ""}`);
			}
			if (s.queue > 0) parts.push(`${s.queue} queued`);
			if (s.paused) parts.push("writing paused");
			if (s.failed.length > 0) {
				const first = s.failed[0];
				const more = s.failed.length > 1 ? ` (and ${s.failed.length - 1} more: ideaweave status)` : "";
				parts.push(`${s.failed.length} failed: ${first.path} — ${first.stage} — ${first.reason}${more}`);
			}
			if (s.lastError) parts.push(`last error: ${s.lastError}`);
			return parts.join(" · ");
		}
	}
}

/**
 * The console line for entering a state, or null for states that need none.
 * Called only when the kind of state changes, so a daemon that stays down
 * costs one line, not one per poll.
 */
export function warningFor(state: DaemonState, address: string): string | null {
	switch (state.kind) {
		case "down":
			return `ideaweave: no daemon at ${address} (${state.reason}); start it with \`ideaweave watch\``;
		case "unauthorized":
			return `ideaweave: the daemon at ${address} refused the token (${state.reason})`;
		case "failing":
			return `ideaweave: the daemon at ${address} answered with an error (${state.reason})`;
		default:
			return null;
	}
}

/**
 * Changes when what the daemon knows changes (notes indexed, progress, pause),
 * so related-ideas views refresh then and only then.
 */
export function stateFingerprint(state: DaemonState): string {
	if (state.kind !== "up") return state.kind;
	const s = state.status;
	return ["up", s.notes, s.chunks, s.indexing.done, s.indexing.total, s.indexing.active, s.paused,
		s.longPass?.phase ?? "", s.longPass?.done ?? ""].join("|");
}

const UP_INTERVAL_MS = 3_000;
const MAX_BACKOFF_MS = 30_000;

/** Poll every 3 s while the daemon answers; double the wait per failed poll, up to 30 s. */
export function nextPollDelay(state: DaemonState, consecutiveFailures: number): number {
	if (state.kind === "up" || consecutiveFailures === 0) return UP_INTERVAL_MS;
	return Math.min(UP_INTERVAL_MS * 2 ** (consecutiveFailures - 1), MAX_BACKOFF_MS);
}
