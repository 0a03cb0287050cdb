import { asApiError } from "./api-client";
import { DaemonStatus } from "./contract";
import { DaemonState, nextPollDelay, stateFingerprint, stateFromError, warningFor } from "./daemon-state";
import { Timers } from "./timers";

export interface Logger {
	warn(message: string): void;
}

export interface PollerHooks {
	status(): Promise<DaemonStatus>;
	/** Runs after every poll that found the daemon up (the write hand-off). */
	whileUp(): Promise<void>;
	/** Every poll's state; `changed` is true when what the daemon knows has changed. */
	onState(state: DaemonState, changed: boolean): void;
	address(): string;
}

/**
 * Polls /status on a timer: every few seconds while the daemon answers, backing
 * off while it does not. Warns once per change of state, never once per poll.
 */
export class DaemonPoller {
	state: DaemonState = { kind: "connecting" };
	private failures = 0;
	private timer: number | null = null;
	private running = false;
	private rerun = false;
	private stopped = true;
	private lastWarning: string | null = null;

	constructor(
		private readonly hooks: PollerHooks,
		private readonly timers: Timers,
		private readonly log: Logger,
	) {}

	start(): void {
		this.stopped = false;
		this.pollNow();
	}

	stop(): void {
		this.stopped = true;
		if (this.timer !== null) this.timers.clearTimeout(this.timer);
		this.timer = null;
	}

	/** Polls at once (after a settings change, say) instead of waiting out the backoff. */
	pollNow(): void {
		if (this.stopped) return;
		if (this.running) {
			this.rerun = true;
			return;
		}
		if (this.timer !== null) this.timers.clearTimeout(this.timer);
		this.timer = null;
		void this.cycle();
	}

	/** One poll; returns the delay before the next one. */
	async poll(): Promise<number> {
		const previous = this.state;
		try {
			this.state = { kind: "up", status: await this.hooks.status() };
			this.failures = 0;
		} catch (err) {
			this.state = stateFromError(asApiError(err));
			this.failures += 1;
		}
		this.warnOnKindChange(previous);
		this.hooks.onState(this.state, stateFingerprint(previous) !== stateFingerprint(this.state));
		if (this.state.kind === "up") await this.runWhileUp();
		return nextPollDelay(this.state, this.failures);
	}

	private async cycle(): Promise<void> {
		this.running = true;
		let delay: number;
		try {
			delay = await this.poll();
		} catch (err) {
			// A bug in a hook must not end polling until Obsidian restarts.
			this.warnOnce(`ideaweave: ${asApiError(err).message}`);
			delay = nextPollDelay(this.state, this.failures);
		} finally {
			this.running = false;
		}
		if (this.stopped) return;
		if (this.rerun) {
			this.rerun = false;
			delay = 0;
		}
		this.timer = this.timers.setTimeout(() => {
			this.timer = null;
			void this.cycle();
		}, delay);
	}

	private async runWhileUp(): Promise<void> {
		try {
			await this.hooks.whileUp();
		} catch (err) {
			this.warnOnce(`ideaweave: ${asApiError(err).message}`);
		}
	}

	private warnOnKindChange(previous: DaemonState): void {
		if (previous.kind === this.state.kind) return;
		this.lastWarning = null;
		const warning = warningFor(this.state, this.hooks.address());
		if (warning !== null) this.warnOnce(warning);
	}

	private warnOnce(message: string): void {
		if (message === this.lastWarning) return;
		this.lastWarning = message;
		this.log.warn(message);
	}
}
