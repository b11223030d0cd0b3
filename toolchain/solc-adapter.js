#!/usr/bin/env node
// Lets py-solc-x (and so Brownie) drive solc-js as if it were the native solc binary.
// Native solc cannot be downloaded on our machines; the npm package `solc` ships the
// same compiler as WebAssembly. Only the two calls py-solc-x makes are supported:
//   --version                  answered without loading the (slow) wasm compiler
//   --standard-json [...]      standard JSON on stdin -> standard JSON on stdout
// Imports are resolved from the project root (where brownie-config.yaml lives) and the
// remapped node_modules, never from the caller's working directory.
'use strict';
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const VERSION = require(path.join(ROOT, 'node_modules', 'solc', 'package.json')).version;

const args = process.argv.slice(2);
if (args.includes('--version')) {
  // Same shape as native solc; py-solc-x parses the "Version:" line.
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${VERSION}+commit.solcjs.Linux.g++\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write(`solc-adapter: only --version and --standard-json are supported (got: ${args.join(' ')})\n`);
  process.exit(2);
}

// Allowed roots for imports: the project, node_modules, and any --allow-paths given.
const roots = [process.cwd(), ROOT, path.join(ROOT, 'node_modules')];
const allowIdx = args.indexOf('--allow-paths');
if (allowIdx >= 0 && args[allowIdx + 1]) {
  for (const p of args[allowIdx + 1].split(',')) if (p) roots.push(path.resolve(p));
}

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : roots.map((r) => path.join(r, importPath));
  for (const candidate of candidates) {
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
  }
  return { error: `File not found: ${importPath} (searched ${roots.join(', ')})` };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const solc = require(path.join(ROOT, 'node_modules', 'solc'));
  const output = solc.compile(input, { import: findImports });
  process.stdout.write(output);
});
