#!/usr/bin/env node
// Builds the browser pages into the Python package (citypass/web/static/), so `pip install`
// ships them and every request a page makes stays on its own origin (no CDN: a till goes offline).
//
//   node toolchain/build-web.mjs [--out DIR]      (default: citypass/web/static)
//
// The output is deterministic (esbuild with fixed options, files copied byte for byte, the
// service worker's cache name is a hash of what it caches): tests/test_bundle.py rebuilds into
// a temporary folder and compares it with the shipped copy.
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import * as esbuild from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "package.json"));
const args = process.argv.slice(2);
const outIndex = args.indexOf("--out");
const out = resolve(outIndex >= 0 ? args[outIndex + 1] : join(root, "citypass/web/static"));
const src = join(root, "web/src");
const assets = join(out, "assets");
const till = join(out, "till");

// The wasm of the very zxing-wasm copy that barcode-detector imports.
const fromDetector = createRequire(require.resolve("barcode-detector/ponyfill"));

for (const dir of [assets, till]) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

const common = {
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome109", "firefox115", "safari16"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  absWorkingDir: root,
};

// The till's script: viem (ABI encoding), the zxing-wasm QR reader, the page's own modules.
await esbuild.build({ ...common, entryPoints: [join(src, "till/main.js")], outfile: join(assets, "till.js") });
await esbuild.build({ ...common, entryPoints: [join(src, "till/banner.js")], outfile: join(assets, "banner.js") });

// One stylesheet: NL Design System components, the theme's tokens, the font, the page's own rules.
await esbuild.build({
  ...common,
  entryPoints: [join(src, "till/till.css")],
  outfile: join(assets, "till.css"),
  loader: { ".woff2": "file", ".woff": "empty" },
  assetNames: "fonts/[name]",
  external: [],
});

// The QR reader's wasm, served by CityPass itself (the polyfill would fetch it from a CDN).
cpSync(fromDetector.resolve("zxing-wasm/reader/zxing_reader.wasm"), join(assets, "zxing_reader.wasm"));
for (const file of readdirSync(join(src, "static"))) cpSync(join(src, "static", file), join(assets, file));

// The till's pages and manifest.
for (const file of readdirSync(join(src, "till"))) {
  if (/\.(html|webmanifest)$/.test(file)) cpSync(join(src, "till", file), join(till, file));
}

// The service worker caches every file of the till so it reloads offline. Its cache name is a
// hash of those files: a new build replaces the old cache.
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path);
    else files.push(path);
  }
};
walk(assets);
walk(till);
const hash = createHash("sha256");
const urls = [];
for (const path of files) {
  const url = "/" + relative(out, path).split("\\").join("/");
  hash.update(url).update(readFileSync(path));
  urls.push(url.replace(/\/index\.html$/, "/"));
}
await esbuild.build({
  ...common,
  entryPoints: [join(src, "till/sw.js")],
  outfile: join(till, "sw.js"),
  format: "iife",
  define: {
    CACHE_NAME: JSON.stringify("citypass-till-" + hash.digest("hex").slice(0, 16)),
    CACHED_URLS: JSON.stringify(urls),
  },
});

await (await import("../web/src/dashboard/build.mjs")).default({ esbuild, common, src, out }); // the dashboard (its own file)
await (await import("../web/src/pass/build.mjs")).default({ esbuild, common, src, out }); // the pass app (its own file)
await (await import("../web/src/backoffice/build.mjs")).default({ esbuild, common, src, out }); // /balie/ and /financien/ (its own file)

if (!existsSync(join(till, "index.html"))) throw new Error("web/src/till/index.html is missing");
console.log(`built ${relative(root, out) || out}: ${files.length + 1} files`);
