import fs from 'node:fs';
import path from 'node:path';
import { scaledObjectModel, ScaledObjectError, type ScaledObjectModel } from './keda';

/** Parses every document of a YAML text (YAML 1.1, as cdk8s writes it). */
export type YamlDocumentsParser = (text: string) => unknown[];

/**
 * The `yaml` package (a devDependency, present in a checkout) when it can be
 * loaded; otherwise cdk8s's own loader (a runtime dependency, slower: it reads
 * the file in a child process).
 */
function defaultParser(file: string): unknown[] {
  try {
    const { parseAllDocuments } = require('yaml') as typeof import('yaml');
    return parseAllDocuments(fs.readFileSync(file, 'utf8'), { version: '1.1' }).map(
      (d) => d.toJS() as unknown,
    );
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
    const { Yaml } = require('cdk8s') as typeof import('cdk8s');
    return Yaml.load(file);
  }
}

/**
 * The worker ScaledObject of a synthesized environment (`charts/<env>/*.yaml`),
 * read the way `kubectl apply -f charts/<env>/` would send it.
 *
 * @throws ScaledObjectError when there is not exactly one ScaledObject.
 */
export function loadScaledObjectModel(chartsDir: string, parse?: YamlDocumentsParser): ScaledObjectModel {
  const found: unknown[] = [];
  for (const file of fs
    .readdirSync(chartsDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const full = path.join(chartsDir, file);
    const docs = parse ? parse(fs.readFileSync(full, 'utf8')) : defaultParser(full);
    for (const doc of docs) {
      if (typeof doc === 'object' && doc !== null && (doc as { kind?: unknown }).kind === 'ScaledObject')
        found.push(doc);
    }
  }
  if (found.length !== 1) {
    throw new ScaledObjectError(
      `expected exactly one ScaledObject in ${chartsDir}, found ${found.length}. Fix: run \`npm run synth\` and point at charts/<env>.`,
    );
  }
  return scaledObjectModel(found[0]);
}
