/**
 * docker-compose.yml and the Dockerfile, checked structurally: there is no
 * Docker engine (nor `docker compose config`) on this machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { configSchema, loadMigrateConfig, loadProducerConfig, loadWorkerConfig } from '../../src/config';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ROOT = path.join(__dirname, '..', '..');
// Compose resolves YAML merge keys (`<<: *app`); so does the parser here.
const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as Json;
const services = compose.services as Record<string, Json>;

/** The subcommands src/cli.ts dispatches (`const commands = { name: ..., }`). */
function cliCommands(): string[] {
  const src = fs.readFileSync(path.join(ROOT, 'src', 'cli.ts'), 'utf8');
  const block = /const commands[^=]*=\s*\{([\s\S]*?)\n\};/.exec(src);
  if (!block) throw new Error('could not find the commands table in src/cli.ts');
  return [...block[1]!.matchAll(/^\s{2}([a-z-]+):/gm)].map((m) => m[1]!);
}

const envOf = (s: Json): Record<string, string> => {
  const e = s.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv: string) => kv.split(/=(.*)/s).slice(0, 2)));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, String(v)]));
};

describe('docker-compose.yml', () => {
  it('has redis, postgres, migrate, producer and worker', () => {
    expect(Object.keys(services).sort()).toEqual(['migrate', 'postgres', 'producer', 'redis', 'worker']);
  });

  it('runs Redis with AOF (fsync every second) and noeviction', () => {
    const cmd = (services.redis!.command as string[]).join(' ');
    expect(cmd).toContain('--appendonly yes');
    expect(cmd).toContain('--appendfsync everysec');
    expect(cmd).toContain('--maxmemory-policy noeviction');
    expect(services.redis!.volumes).toEqual(['redis-data:/data']);
  });

  it('the worker can be scaled: no container_name, no published ports', () => {
    expect(services.worker!.container_name).toBeUndefined();
    expect(services.worker!.ports).toBeUndefined();
    for (const s of Object.values(services)) expect(s.container_name).toBeUndefined();
  });

  it('starts in order: stores healthy, then migrate, then producer and workers after migrate completed successfully', () => {
    expect(services.migrate!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(services.migrate!.restart).toBe('no');
    for (const name of ['producer', 'worker']) {
      expect(services[name]!.depends_on).toEqual({
        redis: { condition: 'service_healthy' },
        postgres: { condition: 'service_healthy' },
        migrate: { condition: 'service_completed_successfully' },
      });
    }
    expect(services.redis!.healthcheck).toBeDefined();
    expect(services.postgres!.healthcheck).toBeDefined();
  });

  it('app services run real CLI commands of the one image, read-only and without capabilities', () => {
    const commands = cliCommands();
    expect(commands).toEqual(expect.arrayContaining(['producer', 'worker', 'migrate']));
    for (const name of ['migrate', 'producer', 'worker']) {
      const s = services[name]!;
      expect(commands).toContain(s.command[0]);
      expect(s.command).toEqual([name]);
      expect(s.image).toBe('tradefleet:dev');
      expect(s.build).toBe('.');
      expect(s.read_only).toBe(true);
      expect(s.cap_drop).toEqual(['ALL']);
    }
  });

  it('the app environment uses only src/config variables, with values the processes accept', () => {
    const known = Object.keys(configSchema);
    for (const name of ['migrate', 'producer', 'worker'])
      for (const k of Object.keys(envOf(services[name]!))) expect(known).toContain(k);
    expect(() => loadMigrateConfig(envOf(services.migrate!))).not.toThrow();
    expect(loadProducerConfig(envOf(services.producer!)).port).toBe(8080);
    const worker = loadWorkerConfig(envOf(services.worker!));
    expect(worker.redisUrl).toBe('redis://redis:6379/0');
  });

  it('the producer publishes the port it listens on; the workers get longer than SHUTDOWN_TIMEOUT_MS to drain', () => {
    const port = envOf(services.producer!).PORT;
    expect(services.producer!.ports).toEqual([`${port}:${port}`]);
    const graceMs = Number(/^(\d+)s$/.exec(services.worker!.stop_grace_period)![1]) * 1000;
    expect(graceMs).toBeGreaterThan(Number(envOf(services.worker!).SHUTDOWN_TIMEOUT_MS));
  });

  it('the database URL the apps use matches the postgres service credentials', () => {
    const pg = envOf(services.postgres!);
    const url = new URL(envOf(services.worker!).DATABASE_URL!);
    expect([url.username, url.password, url.pathname.slice(1), url.hostname]).toEqual([
      pg.POSTGRES_USER,
      pg.POSTGRES_PASSWORD,
      pg.POSTGRES_DB,
      'postgres',
    ]);
  });
});

describe('Dockerfile', () => {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const stages = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => m[2]);

  it('is multi-stage: build, production deps, small runtime', () => {
    expect(stages).toEqual(['build', 'deps', 'runtime']);
    expect(text).toMatch(/RUN npm ci[^\n]*\|\| npm install/);
    expect(text).toContain('RUN npm run build');
    expect(text).toMatch(/npm ci --omit=dev/);
  });

  it('runs as a numeric non-root user with the CLI as entrypoint, producer by default', () => {
    const runtime = text.slice(text.lastIndexOf('FROM '));
    expect(runtime).toMatch(/^USER 10001:10001$/m);
    expect(runtime).toContain('ENTRYPOINT ["node", "dist/cli.js"]');
    expect(runtime).toContain('CMD ["producer"]');
    expect(runtime).not.toMatch(/COPY (--from=build )?\S*src\b/);
  });

  it('.dockerignore keeps node_modules, dist and .git out of the build context', () => {
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
  });
});
