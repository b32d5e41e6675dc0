/**
 * Prints the README configuration table generated from src/config.
 *   npx tsx scripts/config-table.ts           print the table
 *   npx tsx scripts/config-table.ts --write   rewrite it in README.md
 *   npx tsx scripts/config-table.ts --check   exit 1 when README.md is stale
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  extractConfigTable,
  normalizeTable,
  renderConfigTable,
  replaceConfigTable,
} from '../src/config/docs';

const readmePath = path.join(__dirname, '..', 'README.md');
const table = renderConfigTable();
const mode = process.argv[2];

if (mode === '--write') {
  fs.writeFileSync(readmePath, replaceConfigTable(fs.readFileSync(readmePath, 'utf8'), table));
  console.log(`updated ${readmePath}`);
} else if (mode === '--check') {
  const current = extractConfigTable(fs.readFileSync(readmePath, 'utf8'));
  if (
    current === undefined ||
    JSON.stringify(normalizeTable(current)) !== JSON.stringify(normalizeTable(table))
  ) {
    console.error('README.md configuration table is stale: run `npx tsx scripts/config-table.ts --write`');
    process.exit(1);
  }
} else {
  console.log(table);
}
