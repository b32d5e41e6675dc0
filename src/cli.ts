/**
 * The `tradefleet` command. Each subcommand loads only what it needs, so
 * `tradefleet migrate` does not pull in Fastify and `tradefleet --help` opens
 * no connection. (require, not import(): under tsx a dynamic import() takes the
 * ESM resolver, which wants file extensions.)
 */
const USAGE = `Usage: tradefleet <command> [options]

Commands:
  dev [--workers N] [--port P] [--demo] [--data-dir DIR]
                     the whole fleet on this machine: Redis and PostgreSQL (its own,
                     unless REDIS_URL / DATABASE_URL are set), migrate, producer, N workers
  producer           the HTTP producer API (PORT, REDIS_URL, DATABASE_URL, ...)
  worker             a worker draining partitions into PostgreSQL
  migrate            apply the database migrations (run once per release, not per pod)
  enqueue [FILE|-] [--url URL] [--batch N] [--token T]
                     post NDJSON trades (one per line) to the producer API, with progress
  inspect [--json]   backlog, pending partitions, oldest age, hottest and halted partitions,
                     recent dead letters
  partition show|halt|resume|skip-head PARTITION_KEY
                     operator actions on one partition (see tradefleet partition --help)

Every process reads its configuration from environment variables; see README.md.`;

type Command = (argv: string[]) => Promise<number | void>;

const commands: Record<string, Command> = {
  dev: async (argv) => (require('./cli/dev') as typeof import('./cli/dev')).dev(argv),
  producer: async () => {
    await (require('./producer/main') as typeof import('./producer/main')).runProducer(process.env);
  },
  worker: async () => {
    await (require('./worker/main') as typeof import('./worker/main')).runWorker(process.env);
  },
  migrate: async () => {
    await (require('./db/migrate') as typeof import('./db/migrate')).runMigrate(process.env);
  },
  enqueue: async (argv) => (require('./cli/enqueue') as typeof import('./cli/enqueue')).enqueue(argv),
  inspect: async (argv) => (require('./cli/inspect') as typeof import('./cli/inspect')).inspect(argv),
  partition: async (argv) => (require('./cli/partition') as typeof import('./cli/partition')).partition(argv),
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return;
  }
  const command = commands[name];
  if (!command) {
    console.error(`tradefleet: unknown command "${name}"\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const code = await command(rest);
  if (typeof code === 'number') process.exitCode = code;
}

main(process.argv.slice(2)).catch((err: unknown) => {
  // Configuration and usage errors carry a complete message; no stack needed.
  const e = err as { name?: string; message?: string; stack?: string };
  const plain = e?.name === 'ConfigError' || e?.name === 'UsageError' || e?.name?.endsWith('MigrationError');
  console.error(`tradefleet: ${plain ? e.message : (e?.stack ?? String(err))}`);
  process.exit(1);
});
