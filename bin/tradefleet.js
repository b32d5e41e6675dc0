#!/usr/bin/env node
// The `tradefleet` command. In a checkout (src/ present) it runs the TypeScript
// sources through tsx so that there is no stale build to forget; in a built
// image (src/ absent) it runs the compiled dist/.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
if (fs.existsSync(path.join(root, 'src', 'cli.ts'))) {
  require('tsx/cjs');
  require(path.join(root, 'src', 'cli.ts'));
} else {
  require(path.join(root, 'dist', 'cli.js'));
}
