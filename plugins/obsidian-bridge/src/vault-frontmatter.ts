import { App, TFile } from "obsidian";
import { FrontmatterTarget } from "./write-handoff";

/**
 * Applies frontmatter edits with Obsidian's own editor of properties, which
 * keeps open editors, the metadata cache and sync in step with the change.
 */
export class VaultFrontmatter implements FrontmatterTarget {
	constructor(private readonly app: App) {}

	async editFrontmatter(
		path: string,
		edit: (frontmatter: Record<string, unknown>) => void,
	): Promise<"edited" | "missing"> {
		const file = this.app.vault.getAbstractFileByPath(path);
		if (!(file instanceof TFile)) return "missing";
		await this.app.fileManager.processFrontMatter(file, edit);
		return "edited";
	}
}
