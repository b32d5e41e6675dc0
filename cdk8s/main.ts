/**
 * `npm run synth`: writes charts/<env>/*.yaml for every environment, removing
 * stale files, so that charts/ is exactly what cdk8s/ describes.
 * (`cdk8s synth` from cdk8s/ runs this too; cdk8s.yaml points here.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { ENVIRONMENTS } from './config';
import { renderEnvironment } from './charts';

export const CHARTS_DIR = path.join(__dirname, '..', 'charts');

function main(): void {
  const outRoot = process.env.CDK8S_OUTDIR ? path.resolve(process.env.CDK8S_OUTDIR) : CHARTS_DIR;
  for (const env of ENVIRONMENTS) {
    const dir = path.join(outRoot, env);
    fs.mkdirSync(dir, { recursive: true });
    const files = renderEnvironment(env);
    for (const stale of fs.readdirSync(dir)) {
      if (stale.endsWith('.yaml') && !files.has(stale)) fs.rmSync(path.join(dir, stale));
    }
    for (const [name, text] of files) fs.writeFileSync(path.join(dir, name), text);
    console.log(`charts/${env}: ${[...files.keys()].join(' ')}`);
  }
}

if (require.main === module) main();
