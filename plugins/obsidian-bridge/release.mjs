// Packs the plugin release zip, as community plugins publish them: one folder named after the plugin's id
// holding manifest.json, main.js, styles.css and versions.json, ready to unzip into a vault's
// .obsidian/plugins/. `node release.mjs OUTDIR` writes OUTDIR/ideaweave-bridge-VERSION.zip from the current
// production build (run `npm run build` first) and prints its path. `make dist` and the release-zip test
// both call it, so the test checks the very zip a release ships.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32, deflateRawSync } from "node:zlib";

const RELEASE_FILES = ["manifest.json", "main.js", "styles.css", "versions.json"];

const here = dirname(fileURLToPath(import.meta.url));

function fail(message) {
	console.error(`release: ${message}`);
	process.exit(1);
}

/** The release's files, after the checks a broken release would otherwise fail only in the app. */
function releaseFiles() {
	const read = (name) => readFileSync(join(here, name));
	const manifest = JSON.parse(read("manifest.json"));
	const versions = JSON.parse(read("versions.json"));
	const pkg = JSON.parse(read("package.json"));
	if (pkg.version !== manifest.version) fail(`package.json has ${pkg.version}, manifest.json ${manifest.version}`);
	// Obsidian reads versions.json to find the newest plugin version the user's app can run.
	if (versions[manifest.version] !== manifest.minAppVersion) {
		fail(`versions.json must map ${manifest.version} to minAppVersion ${manifest.minAppVersion}`);
	}
	let main;
	try {
		main = read("main.js");
	} catch {
		fail("main.js is missing: run `npm run build`");
	}
	// `npm run dev` inlines a source map of the whole source; a release carries the production build only.
	if (main.includes("sourceMappingURL=data:")) fail("main.js is a development build: run `npm run build`");
	return { manifest, files: RELEASE_FILES.map((name) => ({ name: `${manifest.id}/${name}`, data: read(name) })) };
}

/** A zip archive (deflated entries, no extras). Times are fixed at 1980-01-01 so that the same files
 * always give the same bytes. */
function zip(files) {
	const locals = [];
	const centrals = [];
	let offset = 0;
	for (const { name, data } of files) {
		const nameBytes = Buffer.from(name, "utf8");
		const packed = deflateRawSync(data, { level: 9 });
		const common = Buffer.alloc(26);
		common.writeUInt16LE(20, 0); // version needed: 2.0 (deflate)
		common.writeUInt16LE(0x0800, 2); // names are UTF-8
		common.writeUInt16LE(8, 4); // deflate
		common.writeUInt16LE(0, 6); // 00:00:00
		common.writeUInt16LE((0 << 9) | (1 << 5) | 1, 8); // 1980-01-01
		common.writeUInt32LE(crc32(data), 10);
		common.writeUInt32LE(packed.length, 14);
		common.writeUInt32LE(data.length, 18);
		common.writeUInt16LE(nameBytes.length, 22);
		common.writeUInt16LE(0, 24); // no extra field
		const local = Buffer.concat([u32(0x04034b50), common, nameBytes, packed]);
		const central = Buffer.concat([
			u32(0x02014b50),
			u16(0x0314), // made by: Unix, 2.0
			common,
			u16(0), // no comment
			u16(0), // disk 0
			u16(0), // internal attributes
			u32((0o100644 << 16) >>> 0), // a regular file, rw-r--r--
			u32(offset),
			nameBytes,
		]);
		locals.push(local);
		centrals.push(central);
		offset += local.length;
	}
	const directory = Buffer.concat(centrals);
	const end = Buffer.concat([
		u32(0x06054b50),
		u16(0),
		u16(0),
		u16(files.length),
		u16(files.length),
		u32(directory.length),
		u32(offset),
		u16(0),
	]);
	return Buffer.concat([...locals, directory, end]);
}

function u16(value) {
	const b = Buffer.alloc(2);
	b.writeUInt16LE(value);
	return b;
}

function u32(value) {
	const b = Buffer.alloc(4);
	b.writeUInt32LE(value);
	return b;
}

const outdir = process.argv[2];
if (!outdir) fail("usage: node release.mjs OUTDIR");
const { manifest, files } = releaseFiles();
mkdirSync(resolve(outdir), { recursive: true });
const out = join(resolve(outdir), `${manifest.id}-${manifest.version}.zip`);
writeFileSync(out, zip(files));
console.log(out);
