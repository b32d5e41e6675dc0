/**
 * External tools some tests need (promtool from Debian's `prometheus`,
 * Debian's `chromium`). .ci/run installs them; on a developer machine without
 * them those tests are skipped with a message saying what to install. Under
 * CI=true they are never skipped: a missing tool fails the test.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Tool {
  /** Absolute path, when found. */
  readonly path: string | undefined;
  /** Set when the tests needing it should be skipped (absent, and not in CI). */
  readonly skipReason: string | undefined;
  /** The path, or a clear failure (CI without the tool). */
  require(): string;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function tool(name: string, debianPackage: string, candidates: readonly string[] = []): Tool {
  const found = onPath(name) ?? candidates.find((c) => fs.existsSync(c));
  const missing = `${name} not found: install it with \`apt-get install ${debianPackage}\` (.ci/run installs it when missing)`;
  const skipReason =
    found === undefined && !process.env.CI ? `${missing}; skipping (CI is not set)` : undefined;
  if (skipReason) console.warn(skipReason);
  return {
    path: found,
    skipReason,
    require: () => {
      if (found === undefined) throw new Error(missing);
      return found;
    },
  };
}
