// The dashboard's part of `make web` (toolchain/build-web.mjs calls this with one line):
// its script and stylesheet bundled by esbuild with the shared options, its page copied, into
// citypass/web/static/dashboard/ (served at /dashboard/). It shares /assets/till.css (the NL
// Design System components, theme tokens and fonts) and /assets/icon.svg with the till.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export default async function buildDashboard({ esbuild, common, src, out }) {
  const from = join(src, "dashboard");
  const to = join(out, "dashboard");
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true });
  await esbuild.build({ ...common, entryPoints: [join(from, "main.js")], outfile: join(to, "dashboard.js") });
  await esbuild.build({ ...common, entryPoints: [join(from, "dashboard.css")], outfile: join(to, "dashboard.css") });
  cpSync(join(from, "index.html"), join(to, "index.html"));
}
