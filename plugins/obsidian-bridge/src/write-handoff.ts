import { asApiError } from "./api-client";
import { PendingWrite } from "./contract";

/** Applies one write's changes to a frontmatter object (the callback body for processFrontMatter). */
export function applyWriteToFrontmatter(frontmatter: Record<string, unknown>, write: PendingWrite): void {
	for (const [key, value] of Object.entries(write.set)) frontmatter[key] = value;
	for (const key of write.remove) delete frontmatter[key];
}

/**
 * The ids of writes already applied, oldest first, capped so the memory stays
 * small: the daemon takes an unacked write back after 60 s, so an id older than
 * the last thousand writes will never be offered again.
 */
export class AppliedWriteIds {
	private readonly ids: Set<string>;

	constructor(
		ids: readonly string[] = [],
		readonly capacity = 1000,
	) {
		this.ids = new Set(ids.slice(-capacity));
	}

	has(id: string): boolean {
		return this.ids.has(id);
	}

	add(id: string): void {
		this.ids.delete(id);
		this.ids.add(id);
		while (this.ids.size > this.capacity) {
			const oldest = this.ids.values().next().value as string;
			this.ids.delete(oldest);
		}
	}

	toArray(): string[] {
		return [...this.ids];
	}
}

/** Where writes land: in Obsidian, a note's frontmatter through `app.fileManager`. */
export interface FrontmatterTarget {
	/** Applies `edit` to the note's frontmatter; "missing" when the vault has no such note. */
	editFrontmatter(path: string, edit: (frontmatter: Record<string, unknown>) => void): Promise<"edited" | "missing">;
}

export interface WritesEndpoint {
	pendingWrites(): Promise<PendingWrite[]>;
	ackWrite(id: string, applied: boolean, error: string | null): Promise<void>;
}

export interface HandoffOutcome {
	/** Paths whose frontmatter this round changed. */
	applied: string[];
	/** Writes already applied earlier whose ack was sent again. */
	reacked: number;
	/** Writes that could not be applied (acked with applied: false). */
	refused: number;
	/** Acks that did not reach the daemon; it will offer those writes again. */
	ackFailures: string[];
}

/**
 * Takes the daemon's queued frontmatter writes and applies them through Obsidian,
 * exactly once per write id: the id is recorded and persisted before the ack, so a
 * connection lost between applying and acking leads to a second ack, never a second edit.
 */
export class WriteHandoff {
	constructor(
		private readonly endpoint: WritesEndpoint,
		private readonly target: FrontmatterTarget,
		private readonly appliedIds: AppliedWriteIds,
		private readonly persistAppliedIds: () => Promise<void>,
	) {}

	async drain(): Promise<HandoffOutcome> {
		const outcome: HandoffOutcome = { applied: [], reacked: 0, refused: 0, ackFailures: [] };
		for (const write of await this.endpoint.pendingWrites()) {
			await this.handle(write, outcome);
		}
		return outcome;
	}

	private async handle(write: PendingWrite, outcome: HandoffOutcome): Promise<void> {
		if (this.appliedIds.has(write.id)) {
			outcome.reacked += 1;
			await this.ack(write.id, true, null, outcome);
			return;
		}
		const error = await this.apply(write);
		if (error !== null) {
			outcome.refused += 1;
			await this.ack(write.id, false, error, outcome);
			return;
		}
		this.appliedIds.add(write.id);
		outcome.applied.push(write.path);
		await this.persistAppliedIds();
		await this.ack(write.id, true, null, outcome);
	}

	/** Returns null when applied, else the one-line reason sent back to the daemon. */
	private async apply(write: PendingWrite): Promise<string | null> {
		try {
			const result = await this.target.editFrontmatter(write.path, (fm) => applyWriteToFrontmatter(fm, write));
			return result === "missing" ? `no note at ${write.path} in the vault` : null;
		} catch (err) {
			return oneLine(err instanceof Error ? err.message : String(err));
		}
	}

	private async ack(id: string, applied: boolean, error: string | null, outcome: HandoffOutcome): Promise<void> {
		try {
			await this.endpoint.ackWrite(id, applied, error);
		} catch (err) {
			outcome.ackFailures.push(`${id}: ${asApiError(err).message}`);
		}
	}
}

function oneLine(message: string): string {
	const line = message.split("\n")[0].trim();
	return line === "" ? "frontmatter could not be updated" : line.slice(0, 300);
}
