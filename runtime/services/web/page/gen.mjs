// Regenerate src/gen from the runtime/v1 contracts the page uses (protobuf-es v2) and mark every file DO NOT EDIT.
// `npm run gen` (part of `make gen`); tests/test_web_generated.py fails when src/gen is stale.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] ?? "src/gen";
const proto = "../../../../proto";
// Only the contracts the page calls (and what they import): the calculator keeps its own copy of
// runtime/v1 for its agent, and the page should not carry services it never talks to.
const FILES = ["common", "health", "logger", "supervisor"];
rmSync(out, { recursive: true, force: true });
const paths = FILES.flatMap((name) => ["--path", `${proto}/runtime/v1/${name}.proto`]);
execFileSync("./node_modules/.bin/buf", ["generate", proto, "--template", "buf.gen.yaml", ...paths,
  "-o", out === "src/gen" ? "." : out], { stdio: "inherit" });
const dir = out === "src/gen" ? "src/gen/runtime/v1" : join(out, "src/gen/runtime/v1");
for (const f of readdirSync(dir)) {
  const path = join(dir, f);
  writeFileSync(path, `// DO NOT EDIT: generated from proto/runtime/v1 by runtime/services/web/page/gen.mjs.\n${readFileSync(path, "utf8")}`);
}
