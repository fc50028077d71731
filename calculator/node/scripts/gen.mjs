// Regenerates src/gen (protobuf-es v2, committed) and marks every file DO NOT EDIT:
//   node scripts/gen.mjs [outDir]        (default: src/gen; `npm run gen`, part of `make gen`)
// Inputs: proto/runtime/v1 and proto/calculator/v1 (the lab's contracts), and calculator/node/proto
// (this lab's own minimal grpc.health.v1 and grpc.reflection protos, served by src/agent).
// tests/test_generated.py regenerates into a temp dir and fails when the committed copy differs.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = resolve(process.argv[2] ?? join(here, "src", "gen"));
const labProto = resolve(here, "..", "..", "proto");
const ownProto = join(here, "proto");
const buf = join(here, "node_modules", ".bin", "buf");

// buf writes <-o>/src/gen (the template's `out`); generate into a scratch dir, then move.
const scratch = mkdtempSync(join(tmpdir(), "calculator-node-gen-"));
try {
  const run = (input, paths) =>
    execFileSync(buf, ["generate", input, "--template", "buf.gen.yaml", ...paths.flatMap((p) => ["--path", p]), "-o", scratch], {
      cwd: here,
      stdio: "inherit",
    });
  run(labProto, [join(labProto, "runtime", "v1"), join(labProto, "calculator", "v1")]);
  run(ownProto, [join(ownProto, "grpc")]);
  rmSync(out, { recursive: true, force: true });
  cpSync(join(scratch, "src", "gen"), out, { recursive: true });
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
for (const file of walk(out)) {
  const from = relative(out, file).replace(/_pb\.ts$/, ".proto");
  const header = `// DO NOT EDIT: generated from ${from} by calculator/node/scripts/gen.mjs (npm run gen).\n`;
  writeFileSync(file, header + readFileSync(file, "utf8"));
}
