/**
 * docs/errors.md from the error catalogue.
 *   npx tsx src/producer/errors-doc.ts           print it
 *   npx tsx src/producer/errors-doc.ts --write   rewrite docs/errors.md
 *   npx tsx src/producer/errors-doc.ts --check   exit 1 when docs/errors.md is stale
 */
import fs from 'node:fs';
import path from 'node:path';

import { renderErrorsDoc } from './errors';

/** Where the generated document lives. */
export const ERRORS_DOC_PATH = path.join(__dirname, '..', '..', 'docs', 'errors.md');

function main(mode: string | undefined): number {
  const doc = renderErrorsDoc();
  if (mode === '--write') {
    fs.mkdirSync(path.dirname(ERRORS_DOC_PATH), { recursive: true });
    fs.writeFileSync(ERRORS_DOC_PATH, doc);
    console.log(`updated ${ERRORS_DOC_PATH}`);
    return 0;
  }
  if (mode === '--check') {
    const current = fs.existsSync(ERRORS_DOC_PATH) ? fs.readFileSync(ERRORS_DOC_PATH, 'utf8') : '';
    if (current !== doc) {
      console.error('docs/errors.md is stale: run `npx tsx src/producer/errors-doc.ts --write`');
      return 1;
    }
    return 0;
  }
  process.stdout.write(doc);
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv[2]);
