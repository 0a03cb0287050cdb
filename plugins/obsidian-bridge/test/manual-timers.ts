import { Timers } from "../src/timers";

/** Timers that fire only when a test advances the clock. */
export class ManualTimers implements Timers {
	now = 0;
	private nextId = 1;
	private readonly due = new Map<number, { at: number; callback: () => void }>();

	setTimeout(callback: () => void, ms: number): number {
		const id = this.nextId++;
		this.due.set(id, { at: this.now + ms, callback });
		return id;
	}

	clearTimeout(handle: number): void {
		this.due.delete(handle);
	}

	/** Delays of the timers still waiting, soonest first. */
	pendingDelays(): number[] {
		return [...this.due.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
	}

	/** Moves the clock forward, firing each due timer in order and letting its promises settle. */
	async advance(ms: number): Promise<void> {
		const end = this.now + ms;
		await settle();
		for (;;) {
			const next = this.soonest();
			if (next === null || next[1].at > end) break;
			this.due.delete(next[0]);
			this.now = next[1].at;
			next[1].callback();
			await settle();
		}
		this.now = end;
	}

	private soonest(): [number, { at: number; callback: () => void }] | null {
		let best: [number, { at: number; callback: () => void }] | null = null;
		for (const entry of this.due) if (best === null || entry[1].at < best[1].at) best = entry;
		return best;
	}
}

/** Lets every promise chain that can move on do so (the fakes answer without real I/O). */
export async function settle(): Promise<void> {
	for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
