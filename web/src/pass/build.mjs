// The pass app's part of `make web` (toolchain/build-web.mjs calls this with one line): its
// script (viem for the key and the signatures, uqr for drawing QR codes) and its stylesheet
// (NL Design System + font) bundled with the shared options, its page, manifest and icons
// copied, and its service worker, whose cache name is a hash of every file it keeps, into
// citypass/web/static/pass/ (served at /pass/). The app needs nothing outside /pass/, so it
// installs and runs offline on its own.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";

export default async function buildPass({ esbuild, common, src, out }) {
  const from = join(src, "pass");
  const to = join(out, "pass");
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  await esbuild.build({ ...common, entryPoints: [join(from, "main.js")], outfile: join(to, "pass.js") });
  await esbuild.build({
    ...common, entryPoints: [join(from, "pass.css")], outfile: join(to, "pass.css"),
    loader: { ".woff2": "file", ".woff": "empty", ".svg": "file" }, assetNames: "fonts/[name]",
    external: ["pass-icon.svg"],
  });
  for (const file of readdirSync(from)) {
    if (/\.(html|webmanifest|png|svg)$/.test(file)) cpSync(join(from, file), join(to, file));
  }
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(to);
  const hash = createHash("sha256");
  const urls = [];
  for (const path of files) {
    const url = "/" + relative(out, path).split("\\").join("/");
    hash.update(url).update(readFileSync(path));
    urls.push(url.replace(/\/index\.html$/, "/"));
  }
  await esbuild.build({
    ...common, entryPoints: [join(from, "sw.js")], outfile: join(to, "sw.js"), format: "iife",
    define: { CACHE_NAME: JSON.stringify("citypass-pass-" + hash.digest("hex").slice(0, 16)), CACHED_URLS: JSON.stringify(urls) },
  });
}
