#!/usr/bin/env node
// The `tradefleet` command. In a checkout (src/ present) it runs the TypeScript
// sources through tsx so that there is no stale build to forget; in a built
// image (src/ absent) it runs the compiled dist/.
const fs = require('node:fs');
const path = require('node:path');

// A SIGTERM that arrives while the process is still loading (a pod stopped
// during start-up) must not kill it mid-way: remember it, and let the service
// shut down cleanly once it has installed its own handlers (takeEarlySignal).
const early = {
  signal: undefined,
  record(signal) {
    early.signal ??= signal;
  },
  take() {
    process.off('SIGTERM', early.record);
    process.off('SIGINT', early.record);
    return early.signal;
  },
};
process.on('SIGTERM', early.record);
process.on('SIGINT', early.record);
globalThis.__tradefleetEarlySignal = early;

const root = path.join(__dirname, '..');
if (fs.existsSync(path.join(root, 'src', 'cli.ts'))) {
  require('tsx/cjs');
  require(path.join(root, 'src', 'cli.ts'));
} else {
  require(path.join(root, 'dist', 'cli.js'));
}
