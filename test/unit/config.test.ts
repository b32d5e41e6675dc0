import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import {
  boolean,
  ConfigError,
  configSchema,
  describeConfig,
  durationMs,
  formatDefault,
  int,
  list,
  loadMigrateConfig,
  loadProducerConfig,
  loadWorkerConfig,
  maskUrl,
  parseVariables,
  renderConfigTable,
  string,
  VARIABLES_BY_PROCESS,
  type VariableName,
} from '../../src/config';
import { extractConfigTable, normalizeTable } from '../../src/config/docs';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    expect(loadWorkerConfig({})).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      redisTls: { rejectUnauthorized: true },
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/tradefleet',
      databaseSsl: { mode: 'disable' },
      logLevel: 'info',
      namespace: 'tradefleet',
      concurrency: 64,
      batchSize: 64,
      budget: 512,
      lockDurationMs: 5000,
      stalledIntervalMs: 2500,
      permanentFailurePolicy: 'dead-letter',
      dedupWindowSeconds: 86400,
      pgPoolSize: 10,
      shutdownTimeoutMs: 20000,
      metricsPort: 9464,
      tracingEnabled: false,
    });
    expect(loadProducerConfig({})).toEqual({
      redisUrl: 'redis://127.0.0.1:6379',
      redisTls: { rejectUnauthorized: true },
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/tradefleet',
      databaseSsl: { mode: 'disable' },
      port: 8080,
      host: '0.0.0.0',
      logLevel: 'info',
      namespace: 'tradefleet',
      dedupWindowSeconds: 86400,
      maxBacklog: 1_000_000,
      batchMaxTrades: 1000,
      bodyLimitBytes: 1_048_576,
      apiTokens: [],
      rateLimit: { perSecond: 0, burst: 0 },
      maxInflightRequests: 256,
      pgPoolSize: 10,
      shutdownTimeoutMs: 20000,
      tracingEnabled: false,
      dashboard: { enabled: false, user: 'admin', password: '', readOnly: false },
    });
    expect(loadMigrateConfig({})).toEqual({
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/tradefleet',
      databaseSsl: { mode: 'disable' },
      logLevel: 'info',
    });
  });

  test('empty values count as unset', () => {
    expect(loadWorkerConfig({ WORKER_CONCURRENCY: '', LOG_LEVEL: '  ' }).concurrency).toBe(64);
  });

  test('every default is valid for its own variable', () => {
    for (const [name, spec] of Object.entries(configSchema)) {
      const dflt = formatDefault(spec);
      expect({ name, parsed: dflt === undefined ? undefined : spec.parse(dflt) }).toEqual({
        name,
        parsed: { ok: true, value: spec.default },
      });
    }
  });

  test('the loaded configuration is frozen', () => {
    const c = loadWorkerConfig({});
    expect(Object.isFrozen(c)).toBe(true);
  });
});

describe('parsing', () => {
  test('values are parsed to their types', () => {
    const c = loadWorkerConfig({
      REDIS_URL: 'rediss://:pw@redis.example:6380/2',
      WORKER_CONCURRENCY: '32',
      LOCK_DURATION_MS: '30s',
      STALLED_INTERVAL_MS: '10000',
      PERMANENT_FAILURE_POLICY: 'HALT',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: '1m',
    });
    expect(c).toMatchObject({
      redisUrl: 'rediss://:pw@redis.example:6380/2',
      concurrency: 32,
      lockDurationMs: 30_000,
      stalledIntervalMs: 10_000,
      permanentFailurePolicy: 'halt',
      logLevel: 'debug',
      shutdownTimeoutMs: 60_000,
    });
  });

  test('a process reads only its own variables', () => {
    const env = { WORKER_CONCURRENCY: '0', PORT: 'nope' };
    expect(() => loadProducerConfig(env)).toThrow(/PORT/);
    expect(() => loadProducerConfig(env)).not.toThrow(/WORKER_CONCURRENCY/);
    expect(() => loadWorkerConfig(env)).not.toThrow(/PORT/);
    expect(loadMigrateConfig(env).logLevel).toBe('info');
  });
});

describe('errors', () => {
  test('several bad variables are reported together, each with its value and the fix', () => {
    const err = configError(() =>
      loadWorkerConfig({
        WORKER_CONCURRENCY: '0',
        LOG_LEVEL: 'loud',
        REDIS_URL: 'http://admin:hunter2@cache:6379',
        LOCK_DURATION_MS: 'soon',
        PERMANENT_FAILURE_POLICY: 'retry',
        TRADEFLEET_NAMESPACE: 'Trade Fleet',
      }),
    );
    expect(err.problems.map((p) => p.variable)).toEqual([
      'REDIS_URL',
      'LOG_LEVEL',
      'TRADEFLEET_NAMESPACE',
      'WORKER_CONCURRENCY',
      'LOCK_DURATION_MS',
      'PERMANENT_FAILURE_POLICY',
    ]);
    expect(err.message).toMatch(/^Invalid worker configuration: 6 problems/);
    for (const p of err.problems) {
      expect(err.message).toContain(p.message);
      expect(p.message.startsWith(p.variable)).toBe(true);
      expect(p.message).toMatch(/Fix: set \S+ to /);
    }
    const byName = Object.fromEntries(err.problems.map((p) => [p.variable, p.message]));
    expect(byName.WORKER_CONCURRENCY).toBe(
      'WORKER_CONCURRENCY="0" is out of range; it must be an integer from 1 to 1000. ' +
        'Fix: set WORKER_CONCURRENCY to an integer from 1 to 1000, or unset it to use the default 64.',
    );
    expect(byName.LOG_LEVEL).toContain('"loud"');
    expect(byName.LOG_LEVEL).toContain('one of fatal, error, warn, info, debug, trace, silent');
    expect(byName.REDIS_URL).toContain('http://admin:***@cache:6379');
    expect(byName.REDIS_URL).toContain('a redis:// or rediss:// URL');
    expect(err.message).not.toContain('hunter2');
  });

  test('cross-field rules are reported with the per-variable problems', () => {
    const err = configError(() =>
      loadWorkerConfig({
        LOCK_DURATION_MS: '5000',
        STALLED_INTERVAL_MS: '6000',
        WORKER_BATCH_SIZE: '100',
        WORKER_BUDGET: '50',
        PG_POOL_SIZE: '-1',
      }),
    );
    expect(err.problems.map((p) => p.variable)).toEqual([
      'PG_POOL_SIZE',
      'STALLED_INTERVAL_MS',
      'WORKER_BUDGET',
    ]);
    expect(err.problems[1]?.message).toMatch(
      /^STALLED_INTERVAL_MS=6000 is greater than LOCK_DURATION_MS=5000.*Fix: set STALLED_INTERVAL_MS to at most 5000/,
    );
    expect(err.problems[2]?.message).toMatch(/^WORKER_BUDGET=50 is smaller than WORKER_BATCH_SIZE=100.*Fix:/);
  });

  test('a cross-field rule is skipped when one of its variables is itself invalid', () => {
    const err = configError(() =>
      loadWorkerConfig({ LOCK_DURATION_MS: 'later', STALLED_INTERVAL_MS: '600000' }),
    );
    expect(err.problems.map((p) => p.variable)).toEqual(['LOCK_DURATION_MS']);
  });

  test('secret values are never printed; URL passwords are masked even when the URL is malformed', () => {
    const schema = {
      API_TOKEN: string({ description: 'token', secret: true, pattern: /^tf_/ }),
      DATABASE_URL: configSchema.DATABASE_URL,
    };
    const err = configError(() =>
      parseVariables(schema, { API_TOKEN: 'sk-live-123', DATABASE_URL: 'postgres//u:p4ss@h' }),
    );
    expect(err.message).toContain('API_TOKEN=(value hidden)');
    expect(err.message).not.toContain('sk-live-123');
    expect(err.message).not.toContain('p4ss');
    expect(maskUrl('postgres://u:p4ss@h:5432/db')).toBe('postgres://u:***@h:5432/db');
    expect(maskUrl('redis://h:6379')).toBe('redis://h:6379');
    expect(maskUrl('postgres://u:p/ss:x@h')).not.toContain('p/ss');
    expect(maskUrl('u:pw@h')).toBe('u:***@h');
    expect(maskUrl('postgres://u:p@ss@h/db')).toBe('postgres://u:***@h/db');
  });

  test('a required variable without a default is reported as missing', () => {
    const err = configError(() =>
      parseVariables(
        { API_KEY: string({ description: 'the key' }), N: int({ description: 'n', min: 1 }) },
        {},
      ),
    );
    expect(err.problems.map((p) => p.message)).toEqual([
      'API_KEY is required but not set. Fix: set API_KEY to any string (the key).',
      'N is required but not set. Fix: set N to an integer >= 1 (n).',
    ]);
  });

  test('the loaders throw only ConfigError, whatever the environment holds', () => {
    const names = Object.keys(configSchema);
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), fc.string()), (env) => {
        for (const load of [loadWorkerConfig, loadProducerConfig, loadMigrateConfig]) {
          try {
            load(env);
          } catch (err) {
            if (!(err instanceof ConfigError) || err.problems.length === 0) throw err;
          }
        }
      }),
    );
  });
});

describe('schema helpers', () => {
  test('int enforces integers and bounds', () => {
    const spec = int({ description: 'x', min: 1, max: 10 });
    fc.assert(
      fc.property(fc.integer({ min: -1000, max: 1000 }), (n) => {
        const r = spec.parse(String(n));
        expect(r.ok).toBe(n >= 1 && n <= 10);
        if (r.ok) expect(r.value).toBe(n);
      }),
    );
    expect(spec.parse('1.5').ok).toBe(false);
    expect(spec.parse('1e3').ok).toBe(false);
    expect(spec.parse('99999999999999999999').ok).toBe(false);
  });

  test('durations accept ms or a unit', () => {
    const spec = durationMs({ description: 'd' });
    expect(['250', '250ms', '5s', '2m', '1h', '5 s'].map((s) => spec.parse(s))).toEqual(
      [250, 250, 5000, 120_000, 3_600_000, 5000].map((value) => ({ ok: true, value })),
    );
    expect(spec.parse('5 days').ok).toBe(false);
    expect(spec.parse('-5').ok).toBe(false);
  });

  test('booleans and lists', () => {
    const b = boolean({ description: 'b' });
    expect(['true', 'YES', '1', 'on', 'false', 'no', '0', 'Off'].map((s) => b.parse(s))).toEqual(
      [true, true, true, true, false, false, false, false].map((value) => ({ ok: true, value })),
    );
    expect(b.parse('maybe').ok).toBe(false);
    const l = list({ description: 'l', item: /^[a-z]+$/ });
    expect(l.parse(' a, b ,,c ')).toEqual({ ok: true, value: ['a', 'b', 'c'] });
    expect(l.parse('a,B')).toMatchObject({ ok: false, message: expect.stringContaining('position 2') });
  });
});

describe('documentation', () => {
  test('every variable has a description and is read by at least one process', () => {
    for (const [name, spec] of Object.entries(configSchema)) {
      expect({ name, description: spec.description.length > 0 }).toEqual({ name, description: true });
      const users = Object.values(VARIABLES_BY_PROCESS).filter((vars) => vars.includes(name as VariableName));
      expect({ name, used: users.length > 0 }).toEqual({ name, used: true });
    }
  });

  test('the README configuration table matches the schema (npx tsx scripts/config-table.ts --write)', () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const table = extractConfigTable(readme);
    expect(table).toBeDefined();
    expect(normalizeTable(table!)).toEqual(normalizeTable(renderConfigTable()));
  });

  test('describeConfig masks URL passwords for logging', () => {
    const c = loadWorkerConfig({ DATABASE_URL: 'postgres://app:s3cret@db/tf' });
    expect(describeConfig(c)).toMatchObject({ databaseUrl: 'postgres://app:***@db/tf', concurrency: 64 });
  });

  test('describeConfig hides the dashboard password; a set password turns the dashboard on', () => {
    const c = loadProducerConfig({ DASHBOARD_PASSWORD: 'correct horse battery', DASHBOARD_READ_ONLY: 'yes' });
    expect(c.dashboard).toEqual({
      enabled: true,
      user: 'admin',
      password: 'correct horse battery',
      readOnly: true,
    });
    const shown = JSON.stringify(describeConfig(c));
    expect(shown).not.toContain('correct horse');
    expect(describeConfig(c).dashboard).toMatchObject({ password: '(hidden)', user: 'admin' });
  });

  test('a short dashboard password, a bad METRICS_PORT and a user with ":" are reported together, without the password', () => {
    let err: unknown;
    try {
      loadProducerConfig({ DASHBOARD_PASSWORD: 'hunter2', DASHBOARD_USER: 'a:b' });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(
      /DASHBOARD_PASSWORD=\(value hidden\) must be 12 to 256 characters/,
    );
    expect((err as Error).message).toMatch(/DASHBOARD_USER="a:b"/);
    expect((err as Error).message).not.toContain('hunter2');
    expect(() => loadWorkerConfig({ METRICS_PORT: '70000' })).toThrow(/METRICS_PORT="70000" is out of range/);
    expect(loadWorkerConfig({ METRICS_PORT: '0' }).metricsPort).toBe(0);
  });
});
