// Regenerate src/gen from proto/runtime/v1 (protobuf-es v2) and mark every file DO NOT EDIT.
// `npm run gen` (part of `make gen`); tests/test_generated.py fails when src/gen is stale.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] ?? "src/gen";
const proto = "../../../../proto";
rmSync(out, { recursive: true, force: true });
execFileSync("./node_modules/.bin/buf", ["generate", proto, "--template", "buf.gen.yaml", "--path",
  `${proto}/runtime/v1`, "-o", out === "src/gen" ? "." : out], { stdio: "inherit" });
const dir = out === "src/gen" ? "src/gen/runtime/v1" : join(out, "src/gen/runtime/v1");
for (const f of readdirSync(dir)) {
  const path = join(dir, f);
  writeFileSync(path, `// DO NOT EDIT: generated from proto/runtime/v1 by runtime/services/web/page/gen.mjs.\n${readFileSync(path, "utf8")}`);
}
