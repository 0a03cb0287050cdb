// Bundled into harness.js for page.html: the obsidian stub (which the page's
// `require` shim hands to main.js), the fake app and the fake daemon.

import * as obsidian from "../obsidian-stub";
import { createFakeApp } from "../fake-app";
import { FakeDaemon } from "../fake-daemon";
import { ACTIVE_NOTE, NOTE_PATHS } from "../fixtures";

(window as unknown as { ideaweaveHarness: unknown }).ideaweaveHarness = {
	obsidian,
	createFakeApp,
	FakeDaemon,
	ACTIVE_NOTE,
	NOTE_PATHS,
};
