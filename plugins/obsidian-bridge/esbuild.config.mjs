// Bundles src/main.ts into main.js the way Obsidian loads community plugins:
// one CommonJS file; `obsidian`, electron and the editor's own modules come from the app.
import { builtinModules } from "node:module";
import esbuild from "esbuild";

const production = process.argv[2] === "production";

const options = {
	entryPoints: ["src/main.ts"],
	bundle: true,
	format: "cjs",
	platform: "browser",
	target: "es2020",
	outfile: "main.js",
	external: [
		"obsidian",
		"electron",
		"@codemirror/*",
		"@lezer/*",
		...builtinModules,
		...builtinModules.map((name) => `node:${name}`),
	],
	logLevel: "info",
	sourcemap: production ? false : "inline",
	treeShaking: true,
	banner: { js: "/* ideaweave bridge: built from src/ with esbuild; do not edit. */" },
};

if (production) {
	await esbuild.build(options);
} else {
	const context = await esbuild.context(options);
	await context.watch();
}
