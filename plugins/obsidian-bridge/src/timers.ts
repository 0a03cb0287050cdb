/** Timer functions, passed in so tests can drive time by hand. */
export interface Timers {
	setTimeout(callback: () => void, ms: number): number;
	clearTimeout(handle: number): void;
}

/** The window's timers (Obsidian's own advice: `window.setTimeout` returns a number, not a NodeJS.Timeout). */
export const windowTimers: Timers = {
	setTimeout: (callback, ms) => window.setTimeout(callback, ms),
	clearTimeout: (handle) => window.clearTimeout(handle),
};

export interface Debounced {
	/** Run the action once `ms` after the last call. */
	schedule(): void;
	cancel(): void;
}

export function debounced(timers: Timers, ms: number, action: () => void): Debounced {
	let handle: number | null = null;
	return {
		schedule() {
			if (handle !== null) timers.clearTimeout(handle);
			handle = timers.setTimeout(() => {
				handle = null;
				action();
			}, ms);
		},
		cancel() {
			if (handle !== null) timers.clearTimeout(handle);
			handle = null;
		},
	};
}
