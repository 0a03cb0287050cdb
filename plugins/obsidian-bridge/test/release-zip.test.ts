// The release zip, as a user gets it: packed by release.mjs (what `make dist` runs), unpacked by a zip
// reader that is not ours (Python's zipfile), then the main.js inside it loaded the way Obsidian loads a
// community plugin (CommonJS, with "obsidian" supplied by the app) and started against the fake app.
// Where Chromium is installed, the unpacked zip also runs in the headless-browser page.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { build } from "esbuild";
import IdeaweaveBridgePlugin from "../src/main";
import { FakeDaemon } from "./fake-daemon";
import { ACTIVE_NOTE } from "./fixtures";
import { settle } from "./manual-timers";
import * as obsidian from "./obsidian-stub";
import { Harness, openRelatedView, startPlugin, statusBarText, texts } from "./plugin-harness";
import { TYPING_PAUSE_MS } from "../src/search-modal";

const PLUGIN_DIR = join(__dirname, "..");
const RELEASE_FILES = ["main.js", "manifest.json", "styles.css", "versions.json"];
const PYTHON = process.env.PYTHON ?? "python3";

let work: string;
let unpacked: string;

/** Packs the zip with release.mjs and unpacks it with Python's zipfile, which checks every CRC first. */
function packAndUnpack(): { zip: string; names: string[] } {
	const out = execFileSync(process.execPath, [join(PLUGIN_DIR, "release.mjs"), join(work, "dist")], {
		encoding: "utf8",
	});
	const zip = out.trim();
	const unzip = `import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    assert bad is None, f"bad CRC in {bad}"
    z.extractall(sys.argv[2])
    print("\\n".join(z.namelist()))`;
	const names = execFileSync(PYTHON, ["-c", unzip, zip, join(work, "unpacked")], { encoding: "utf8" });
	return { zip, names: names.trim().split("\n") };
}

/** Evaluates a CommonJS bundle as Obsidian does: `require("obsidian")` is the app's API, nothing else is there. */
function loadPluginClass(mainJs: string): typeof IdeaweaveBridgePlugin {
	const module: { exports: { default?: typeof IdeaweaveBridgePlugin } } = { exports: {} };
	const require = (name: string) => {
		if (name === "obsidian") return obsidian;
		throw new Error(`main.js required ${name}, which Obsidian does not provide`);
	};
	new Function("module", "exports", "require", mainJs)(module, module.exports, require);
	if (typeof module.exports.default !== "function") throw new Error("main.js exports no plugin class");
	return module.exports.default;
}

function chromiumBinary(): string | null {
	if (process.env.CHROMIUM) return process.env.CHROMIUM;
	for (const dir of (process.env.PATH ?? "").split(delimiter)) {
		for (const name of ["chromium", "chromium-browser"]) {
			if (dir && existsSync(join(dir, name))) return join(dir, name);
		}
	}
	return null;
}

describe("release zip", () => {
	let zipNames: string[];
	let h: Harness | undefined;

	before(() => {
		work = mkdtempSync(join(tmpdir(), "ideaweave-release-"));
		zipNames = packAndUnpack().names;
		unpacked = join(work, "unpacked", "ideaweave-bridge");
	});
	afterEach(async () => {
		await h?.close();
		h = undefined;
	});
	after(() => rmSync(work, { recursive: true, force: true }));

	test("holds the four files community plugins publish, in a folder named after the plugin's id", () => {
		assert.deepEqual(zipNames.sort(), RELEASE_FILES.map((name) => `ideaweave-bridge/${name}`));
		for (const name of RELEASE_FILES) {
			assert.ok(readFileSync(join(unpacked, name)).equals(readFileSync(join(PLUGIN_DIR, name))), name);
		}
		const manifest = JSON.parse(readFileSync(join(unpacked, "manifest.json"), "utf8"));
		const versions = JSON.parse(readFileSync(join(unpacked, "versions.json"), "utf8"));
		assert.equal(manifest.id, "ideaweave-bridge");
		assert.equal(versions[manifest.version], manifest.minAppVersion);
		const pkg = JSON.parse(readFileSync(join(PLUGIN_DIR, "package.json"), "utf8"));
		assert.equal(manifest.version, pkg.version);
	});

	test("the same files pack into the same bytes", () => {
		const first = readFileSync(join(work, "dist", readdirSync(join(work, "dist"))[0]));
		packAndUnpack();
		const second = readFileSync(join(work, "dist", readdirSync(join(work, "dist"))[0]));
		assert.ok(first.equals(second));
	});

	test("its main.js is the production build and needs nothing but obsidian", () => {
		const mainJs = readFileSync(join(unpacked, "main.js"), "utf8");
		assert.doesNotMatch(mainJs, /sourceMappingURL/);
		const required = new Set([...mainJs.matchAll(/\brequire\(["']([^"']+)["']\)/g)].map((m) => m[1]));
		assert.deepEqual([...required], ["obsidian"]);
	});

	test("its main.js starts in the app: the related view, the status bar, search and settings render", async () => {
		const PluginClass = loadPluginClass(readFileSync(join(unpacked, "main.js"), "utf8"));
		assert.notEqual(PluginClass, IdeaweaveBridgePlugin, "the zip's class, not the one built from src/");
		h = await startPlugin({ pluginClass: PluginClass });
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);

		assert.deepEqual(texts(view, ".ideaweave-related-note"), [ACTIVE_NOTE.replace(/\.md$/, "")]);
		assert.equal(texts(view, ".ideaweave-idea-title").length, h.daemon.related.get(ACTIVE_NOTE)!.length);
		assert.match(statusBarText(h.app), /^ideaweave: /);

		h.plugin.commands.get("search-ideas")!.callback!();
		const input = h.app.modalLayerEl.querySelector("input")!;
		input.value = "off switch";
		input.dispatchEvent(new input.ownerDocument.defaultView!.Event("input"));
		await h.timers.advance(TYPING_PAUSE_MS); // search as you type asks once typing pauses
		await settle();
		assert.ok(h.app.modalLayerEl.querySelectorAll(".suggestion-item").length > 0, "search shows results");

		const tab = h.plugin.settingTabs[0];
		tab.display();
		assert.ok(tab.containerEl.querySelectorAll(".setting-item").length > 0, "the settings tab renders");
		assert.deepEqual(h.warnings, []);
	});

	test("its main.js says when the daemon is not running", async () => {
		const daemon = new FakeDaemon();
		daemon.running = false;
		h = await startPlugin({ pluginClass: loadPluginClass(readFileSync(join(unpacked, "main.js"), "utf8")), daemon });
		h.workspace.openNote(ACTIVE_NOTE);
		const view = await openRelatedView(h);
		assert.deepEqual(texts(view, ".ideaweave-command"), ["ideaweave watch"]);
	});

	const chromium = chromiumBinary();
	test(
		"the unpacked zip renders in headless Chromium: the related view, and the daemon-down message",
		{ skip: chromium ? false : "Chromium is not installed (apt-get install chromium, or set CHROMIUM)" },
		async () => {
			// page.html loads ../../main.js and ../../styles.css: put the page inside the unpacked folder.
			const page = join(unpacked, "test", "browser");
			mkdirSync(page, { recursive: true });
			for (const name of ["page.html", "page.js", "app-shell.css"]) {
				copyFileSync(join(PLUGIN_DIR, "test", "browser", name), join(page, name));
			}
			await build({
				entryPoints: [join(PLUGIN_DIR, "test", "browser", "harness.ts")],
				bundle: true,
				format: "iife",
				target: "es2020",
				outfile: join(page, "harness.js"),
				logLevel: "warning",
			});
			for (const [query, shown] of [["", "ideaweave-idea-title"], ["?daemon=down", "ideaweave-message-daemon-down"]]) {
				const dom = dumpDom(chromium!, `file://${join(page, "page.html")}${query}`);
				const errors = /<pre id="errors"[^>]*>([\s\S]*?)<\/pre>/.exec(dom)?.[1] ?? "(no error report)";
				assert.match(dom, /data-page-state="ready"/, `page${query} did not render: ${errors}`);
				assert.match(dom, /<pre id="errors" data-count="0"><\/pre>/, errors);
				assert.match(dom, new RegExp(`class="[^"]*${shown}`), `page${query} shows no ${shown}`);
			}
		},
	);
});

function dumpDom(chromium: string, url: string): string {
	const profile = mkdtempSync(join(tmpdir(), "ideaweave-chromium-"));
	try {
		const result = spawnSync(
			chromium,
			[
				"--headless",
				"--no-sandbox",
				"--disable-gpu",
				"--no-first-run",
				"--disable-background-networking",
				"--disable-component-update",
				"--disable-sync",
				`--user-data-dir=${profile}`,
				"--virtual-time-budget=2000",
				"--dump-dom",
				url,
			],
			{ encoding: "utf8", timeout: 60_000 },
		);
		if (result.status !== 0) throw new Error(`chromium exited ${result.status}: ${result.stderr}`);
		return result.stdout;
	} finally {
		rmSync(profile, { recursive: true, force: true });
	}
}
