// The back office's part of `make web` (toolchain/build-web.mjs calls this with one line): the
// desk (/balie/) and finance (/financien/) pages, each one script and one stylesheet bundled by
// esbuild with the shared options, into citypass/web/static/{balie,financien}/. They share
// /assets/till.css (NL Design System components, theme tokens, fonts) with the till.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export default async function buildBackoffice({ esbuild, common, src, out }) {
  for (const page of ["balie", "financien"]) {
    const to = join(out, page);
    rmSync(to, { recursive: true, force: true });
    mkdirSync(to, { recursive: true });
    await esbuild.build({ ...common, entryPoints: [join(src, page, "main.js")], outfile: join(to, `${page}.js`) });
    await esbuild.build({ ...common, entryPoints: [join(src, "backoffice", "backoffice.css")], outfile: join(to, "backoffice.css") });
    cpSync(join(src, page, "index.html"), join(to, "index.html"));
  }
}
