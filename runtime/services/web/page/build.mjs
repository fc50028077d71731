// Bundle the page into dist/ (not committed): `npm run build`, run by `make web` / `make lab`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  outfile: "dist/main.js",
  logLevel: "warning",
});
for (const f of ["index.html", "style.css"]) copyFileSync(`src/${f}`, `dist/${f}`);
