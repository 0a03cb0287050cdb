import { App, Plugin, PluginSettingTab, Setting } from "obsidian";
import { ApiError } from "./api-client";
import { DaemonStatus } from "./contract";

export interface BridgeSettings {
	/** Where `ideaweave watch` serves its API. */
	address: string;
	/** The API token `ideaweave token` prints. */
	token: string;
	/** How many related ideas the view asks for. */
	relatedCount: number;
	/** Apply the daemon's frontmatter writes through Obsidian (else the daemon writes the files itself). */
	applyWrites: boolean;
}

export const DEFAULT_SETTINGS: BridgeSettings = {
	address: "http://127.0.0.1:8765",
	token: "",
	relatedCount: 10,
	applyWrites: true,
};

/** Everything the plugin keeps with `saveData`. */
export interface StoredData {
	settings: BridgeSettings;
	appliedWriteIds: string[];
}

/** Reads what `loadData` returned, keeping every valid field and defaulting the rest. */
export function parseStoredData(raw: unknown): StoredData {
	const data = isObject(raw) ? raw : {};
	const stored = isObject(data.settings) ? data.settings : {};
	const settings: BridgeSettings = {
		address: nonEmptyString(stored.address) ?? DEFAULT_SETTINGS.address,
		token: typeof stored.token === "string" ? stored.token : DEFAULT_SETTINGS.token,
		relatedCount: validCount(stored.relatedCount) ?? DEFAULT_SETTINGS.relatedCount,
		applyWrites: typeof stored.applyWrites === "boolean" ? stored.applyWrites : DEFAULT_SETTINGS.applyWrites,
	};
	const ids = Array.isArray(data.appliedWriteIds) ? data.appliedWriteIds : [];
	return { settings, appliedWriteIds: ids.filter((id): id is string => typeof id === "string") };
}

/** The sentence the "Test connection" button shows. */
export function connectionTestResult(outcome: DaemonStatus | ApiError, address: string): string {
	if (!(outcome instanceof ApiError)) {
		const version = outcome.version ? ` (ideaweave ${outcome.version})` : "";
		return `Connected: ${outcome.notes} notes, ${outcome.chunks} chunks indexed${version}.`;
	}
	switch (outcome.failure) {
		case "unreachable":
			return `No daemon answers at ${address}. Start it with \`ideaweave watch\`.`;
		case "unauthorized":
			return "The daemon answered but refused the token. Copy it again from `ideaweave token`.";
		case "malformed":
			return `Something answers at ${address}, but it is not the ideaweave daemon.`;
		default:
			return `The daemon answered with an error: ${outcome.message}`;
	}
}

export interface SettingsHost extends Plugin {
	settings: BridgeSettings;
	saveSettings(): Promise<void>;
	testConnection(): Promise<string>;
}

export class BridgeSettingTab extends PluginSettingTab {
	constructor(
		app: App,
		private readonly host: SettingsHost,
	) {
		super(app, host);
	}

	display(): void {
		const { containerEl } = this;
		const settings = this.host.settings;
		containerEl.replaceChildren();

		new Setting(containerEl)
			.setName("Daemon address")
			.setDesc("Where `ideaweave watch` listens: the port is `api.port` in its config.")
			.addText((text) =>
				text
					.setPlaceholder(DEFAULT_SETTINGS.address)
					.setValue(settings.address)
					.onChange(async (value) => {
						settings.address = value.trim() || DEFAULT_SETTINGS.address;
						await this.host.saveSettings();
					}),
			);

		new Setting(containerEl)
			.setName("Token")
			.setDesc("Printed by `ideaweave token --vault <your vault>`.")
			.addText((text) => {
				text.inputEl.type = "password";
				text.setPlaceholder("paste the token").setValue(settings.token).onChange(async (value) => {
					settings.token = value.trim();
					await this.host.saveSettings();
				});
			});

		new Setting(containerEl)
			.setName("Related ideas shown")
			.setDesc("How many ideas the Related ideas view lists for a note.")
			.addSlider((slider) =>
				slider
					.setLimits(3, 30, 1)
					.setValue(settings.relatedCount)
					.setDynamicTooltip()
					.onChange(async (value) => {
						settings.relatedCount = value;
						await this.host.saveSettings();
					}),
			);

		new Setting(containerEl)
			.setName("Write properties through Obsidian")
			.setDesc(
				"While on, the daemon hands its `related` and `summary` updates to this plugin, which applies them " +
					"with Obsidian's own frontmatter editor, so open notes never clash with the daemon's writes.",
			)
			.addToggle((toggle) =>
				toggle.setValue(settings.applyWrites).onChange(async (value) => {
					settings.applyWrites = value;
					await this.host.saveSettings();
				}),
			);

		const test = new Setting(containerEl).setName("Test connection").setDesc("Asks the daemon for its status.");
		test.addButton((button) =>
			button.setButtonText("Test connection").onClick(async () => {
				test.setDesc("Contacting the daemon…");
				test.setDesc(await this.host.testConnection());
			}),
		);
	}
}

function isObject(value: unknown): value is Record<string, unknown> {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): string | null {
	return typeof value === "string" && value.trim() !== "" ? value.trim() : null;
}

function validCount(value: unknown): number | null {
	return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 100 ? value : null;
}
