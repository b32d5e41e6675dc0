import { loadWorkerConfig } from '../config';
import { createRedis, pgConnection } from '../config/connections';
import { createDb } from '../db/client';
import { getPosition } from '../db/repositories';
import { PartitionAdmin, QueueKeys, readHead } from '../queue';
import { skipTrade } from '../worker/apply';
import { intOption, parse, UsageError } from './args';

const USAGE = `Usage: tradefleet partition <action> PARTITION_KEY [options]
  show PK [--count N]           its position, its head trades and whether it is halted
  halt PK [--reason TEXT]       stop draining it (its trades stay queued)
  resume PK                     drain it again from its head (also "retry the head")
  skip-head PK --seq N [--reason TEXT]
                                dead-letter the head trade (seq N, as shown) and remove it
                                from the queue; the partition must be halted
  PARTITION_KEY is {accountId}_{bookId}_{securityId} as the API returns it.`;

/** Operator actions on one partition, from the command line (the dashboard offers the same). */
export async function partition(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      count: { type: 'string' },
      reason: { type: 'string' },
      seq: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    USAGE,
  );
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [action, pk] = positionals;
  if (!action || !pk || positionals.length > 2) throw new UsageError(USAGE);
  const config = loadWorkerConfig(process.env);
  const redis = createRedis(config, { maxRetriesPerRequest: 1 });
  const { db, close } = createDb({ ...pgConnection(config), poolSize: 2 });
  const admin = new PartitionAdmin(redis, config.namespace, config.dedupWindowSeconds);
  const keys = new QueueKeys(config.namespace);
  try {
    switch (action) {
      case 'show': {
        const count = intOption('count', values.count, 10, 1, 1000);
        const [position, head, halted] = await Promise.all([
          getPosition(db, pk),
          readHead(redis, keys, pk, count),
          admin.listHalted(),
        ]);
        const h = halted.find((x) => x.partitionKey === pk);
        console.log(
          JSON.stringify(
            { partitionKey: pk, halted: h?.reason ?? null, position: position ?? null, head },
            null,
            2,
          ),
        );
        return 0;
      }
      case 'halt': {
        const changed = await admin.halt(pk, {
          code: 'operator',
          message: values.reason ?? 'halted by an operator',
        });
        console.log(changed ? `halted ${pk}` : `${pk} was already halted`);
        return 0;
      }
      case 'resume': {
        const resumed = await admin.resume(pk);
        console.log(resumed ? `resumed ${pk}` : `${pk} was not halted`);
        return resumed ? 0 : 1;
      }
      case 'skip-head': {
        const seq = intOption('seq', values.seq, 0, 1, Number.MAX_SAFE_INTEGER);
        if (!values.seq)
          throw new UsageError(`skip-head needs --seq N (the seq "show" gives for the head)\n\n${USAGE}`);
        const [head] = await readHead(redis, keys, pk, 1);
        if (!head || head.seq !== seq) {
          throw new UsageError(
            `the head of ${pk} is ${head ? `seq ${head.seq}` : 'empty'}, not seq ${seq}; run "tradefleet partition show ${pk}"`,
          );
        }
        if (!(await admin.listHalted()).some((x) => x.partitionKey === pk)) {
          throw new UsageError(`${pk} is not halted; halt it first ("tradefleet partition halt ${pk}")`);
        }
        // PostgreSQL first (dead letter + last_seq), then Redis: a crash in between is
        // repaired by running the command again, and the worker skips a recorded seq.
        const r = await skipTrade(db, {
          partitionKey: pk,
          item: head,
          reasonCode: 'operator_skip',
          reason: values.reason ?? 'skipped by an operator',
        });
        await admin.skipHead(pk, seq);
        console.log(
          `${r === 'skipped' ? 'dead-lettered and removed' : 'removed (already recorded)'} ${head.tradeId} (seq ${seq}) from ${pk}; resume it to go on`,
        );
        return 0;
      }
      default:
        throw new UsageError(`unknown action "${action}"\n\n${USAGE}`);
    }
  } finally {
    redis.disconnect();
    await close();
  }
}
