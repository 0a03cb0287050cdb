// Starts the built plugin against the fake app and opens its Related ideas view.
// page.html?daemon=down shows the view with no daemon running.
(async function startPlugin() {
	"use strict";
	var harness = window.ideaweaveHarness;
	var PluginClass = module.exports.default;
	if (!harness || !PluginClass) return; // already reported by the failed <script>

	var daemonDown = new URLSearchParams(location.search).get("daemon") === "down";
	var fake = harness.createFakeApp(document, harness.NOTE_PATHS, {
		statusBarEl: document.getElementById("status-bar"),
		modalLayerEl: document.getElementById("modal-layer"),
	});
	var daemon = new harness.FakeDaemon();
	daemon.running = !daemonDown;
	harness.obsidian.setRequestUrlHandler(daemon.requestUrl);
	fake.app.pluginData.set("ideaweave-bridge", { settings: { token: daemon.token }, appliedWriteIds: [] });

	var plugin = new PluginClass(fake.app, { id: "ideaweave-bridge", name: "ideaweave bridge", version: "0.1.0" });
	// The status bar's warning for a missing daemon is expected here; keep it out of the error report.
	if (daemonDown) plugin.environment.log = { warn: function () {} };
	await plugin.onload();
	fake.workspace.finishLayout();
	fake.workspace.openNote(harness.ACTIVE_NOTE);
	await plugin.openRelatedView();

	var leaf = fake.workspace.getLeavesOfType("ideaweave-related")[0];
	document.getElementById("right-split").appendChild(leaf.containerEl);
	var expected = daemonDown ? ".ideaweave-message-daemon-down" : ".ideaweave-idea";
	for (var i = 0; i < 100 && !leaf.containerEl.querySelector(expected); i++) {
		await new Promise(function (resolve) { setTimeout(resolve, 20); });
	}
	if (!leaf.containerEl.querySelector(expected)) throw new Error("the view never showed " + expected);
	if (document.body.getAttribute("data-page-state") === "loading") {
		document.body.setAttribute("data-page-state", "ready");
	}
})().catch(function (err) {
	report("page.js: " + (err && err.stack || err));
});
