/**
 * The dashboard's operator actions. Each returns an outcome (done, or refused
 * with a reason and an HTTP status) instead of throwing for expected refusals;
 * infrastructure errors propagate.
 *
 * - resume / retry-head: PartitionAdmin.resume. A partition halted by the
 *   worker's policy retries its head on resume; "retry head" is the same
 *   action under the name operators look for.
 * - skip-head (halted partitions only, with the seq the operator saw): the
 *   head is recorded as a dead letter `operator_skip` and last_seq advanced in
 *   PostgreSQL FIRST (skipTrade), then removed from Redis (skipHead, fenced by
 *   that seq). A crash in between loses nothing: the worker skips a seq
 *   PostgreSQL already consumed.
 * - replay of a dead letter: see {@link replayDeadLetter}.
 */
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';

import { getTrade, lockDeadLetter, recordReplayEnqueued, recordReplayRequest, type Database } from '../db';
import { canonicalTradeJson, partitionKey as partitionKeyOf, payloadHash, validateTrade } from '../domain';
import type { Logger } from '../observability/logger';
import { BacklogFullError, type PartitionQueue } from '../queue/partition-queue';
import type { PartitionAdmin } from '../queue/admin';
import { locateTrade, readHead } from '../queue/signals';
import { HaltPartitionError } from '../queue/consumer';
import { skipTrade } from '../worker/apply';

export interface ActionDeps {
  readonly admin: PartitionAdmin;
  readonly queue: PartitionQueue;
  readonly redis: Redis;
  readonly db: Kysely<Database>;
  readonly logger: Logger;
}

export type ActionOutcome =
  | { readonly ok: true; readonly message: string }
  | { readonly ok: false; readonly status: 404 | 409 | 422 | 503; readonly message: string };

const done = (message: string): ActionOutcome => ({ ok: true, message });
const refused = (status: 404 | 409 | 422 | 503, message: string): ActionOutcome => ({
  ok: false,
  status,
  message,
});

export async function resumePartition(
  deps: ActionDeps,
  partitionKey: string,
  by: string,
  as: 'resume' | 'retry-head' = 'resume',
): Promise<ActionOutcome> {
  const halted = await deps.admin.listHalted();
  const reason = halted.find((h) => h.partitionKey === partitionKey)?.reason;
  if (!(await deps.admin.resume(partitionKey))) {
    return refused(409, `partition ${partitionKey} is not halted`);
  }
  deps.logger.info(
    { partitionKey, by, action: as, haltReason: reason },
    `partition resumed from the dashboard (${as})`,
  );
  return done(
    as === 'retry-head'
      ? `partition ${partitionKey} resumed: a worker retries its head now`
      : `partition ${partitionKey} resumed`,
  );
}

/** Halts a partition for an operator (its trades stay queued). */
export async function haltPartition(
  deps: ActionDeps,
  partitionKey: string,
  by: string,
): Promise<ActionOutcome> {
  const halted = await deps.admin.halt(partitionKey, {
    code: 'operator_halt',
    message: `halted from the dashboard by ${by}`,
    by,
  });
  if (!halted) return refused(409, `partition ${partitionKey} is already halted`);
  deps.logger.warn({ partitionKey, by, action: 'halt' }, 'partition halted from the dashboard');
  return done(`partition ${partitionKey} halted: a worker draining it stops at its next batch boundary`);
}

export async function skipHead(
  deps: ActionDeps,
  partitionKey: string,
  expectedSeq: number,
  by: string,
): Promise<ActionOutcome> {
  const keys = deps.queue.keys;
  if ((await deps.redis.hexists(keys.halted, partitionKey)) !== 1) {
    return refused(409, `partition ${partitionKey} is not halted: halt it before skipping its head`);
  }
  const [head] = await readHead(deps.redis, keys, partitionKey, 1);
  if (!head) return refused(409, `partition ${partitionKey} has no queued trade`);
  if (head.seq !== expectedSeq) {
    return refused(
      409,
      `the head of ${partitionKey} is seq ${head.seq} now, not ${expectedSeq}: reload and retry`,
    );
  }
  let recorded: 'skipped' | 'already-consumed';
  try {
    recorded = await skipTrade(deps.db, {
      partitionKey,
      item: head,
      reasonCode: 'operator_skip',
      reason: `skipped from the dashboard by ${by}`,
    });
  } catch (err) {
    if (err instanceof HaltPartitionError) return refused(409, err.reason.message);
    throw err;
  }
  try {
    await deps.admin.skipHead(partitionKey, head.seq);
  } catch (err) {
    // Recorded in PostgreSQL already: the worker will skip the seq when the partition resumes.
    return refused(
      409,
      `${(err as Error).message} (seq ${head.seq} is recorded in PostgreSQL; the worker skips it)`,
    );
  }
  deps.logger.warn(
    { partitionKey, seq: head.seq, tradeId: head.tradeId, by, action: 'skip-head', recorded },
    'head of a halted partition skipped from the dashboard',
  );
  return done(
    recorded === 'skipped'
      ? `skipped seq ${head.seq} (trade ${head.tradeId}): dead letter operator_skip; resume the partition to drain the rest`
      : `seq ${head.seq} (trade ${head.tradeId}) was already consumed in PostgreSQL; removed from the queue`,
  );
}

/**
 * Re-enqueues a dead letter's payload, with the same tradeId, at the TAIL of
 * its partition (a new seq), and records the replay.
 *
 * The same tradeId would be answered as a duplicate twice over: by Redis (the
 * done marker the dead letter left for the dedup window) and by the worker
 * (a dead letter with the same payload hash counts as a prior delivery). So:
 *
 * 1. In one PostgreSQL transaction holding the dead letter's row lock (two
 *    replays of one dead letter serialize): refuse when the payload is not a
 *    valid trade of this partition, when the tradeId is applied, or when
 *    another, not replayed, dead letter of the tradeId exists (replay that
 *    newer one). Then forget the done marker of this delivery in Redis
 *    (PartitionAdmin.forgetTrade), set dead_letters.replayed_at and add a
 *    dead_letter_replays row. replayed_at is what the worker reads: a
 *    replayed dead letter is not a prior delivery.
 * 2. After the commit (so the worker can only see the replay once the mark is
 *    visible): enqueue through PartitionQueue.enqueue, then store the seq it got.
 *
 * A crash between 1 and 2 leaves a replay without a seq: the dead letter
 * shows as not applied, and replaying it again is allowed (the checks are on
 * the current state, not on earlier replays).
 */
export async function replayDeadLetter(
  deps: ActionDeps,
  partitionKey: string,
  seq: number,
  by: string,
): Promise<ActionOutcome> {
  type Plan =
    | { kind: 'refuse'; outcome: ActionOutcome }
    | { kind: 'enqueue'; replayId: string; item: Parameters<PartitionQueue['enqueue']>[0][number] }
    | { kind: 'adopt'; replayId: string; tradeId: string; queuedSeq: number };

  const plan: Plan = await deps.db.transaction().execute(async (trx): Promise<Plan> => {
    const letter = await lockDeadLetter(trx, partitionKey, seq);
    if (!letter)
      return { kind: 'refuse', outcome: refused(404, `no dead letter at seq ${seq} of ${partitionKey}`) };
    const tradeId = letter.tradeId;
    const validation = validateTrade(letter.payload);
    if (!validation.ok) {
      const problems = validation.errors.map((e) => `${e.path || '(body)'} (${e.code})`).join(', ');
      return {
        kind: 'refuse',
        outcome: refused(
          422,
          `the payload of dead letter ${tradeId} is not a valid trade (${problems}): it cannot be replayed; enqueue a corrected trade with a new tradeId`,
        ),
      };
    }
    const trade = validation.trade;
    const pk = partitionKeyOf(trade.accountId, trade.bookId, trade.securityId);
    if (trade.tradeId !== tradeId || pk !== partitionKey) {
      return {
        kind: 'refuse',
        outcome: refused(
          422,
          `the payload of dead letter seq ${seq} is trade ${trade.tradeId} of ${pk}: not replayable here`,
        ),
      };
    }
    const applied = await getTrade(trx, tradeId);
    if (applied) {
      return {
        kind: 'refuse',
        outcome: refused(
          409,
          `trade ${tradeId} is already applied (seq ${applied.seq} of ${applied.partitionKey})`,
        ),
      };
    }
    const newer = await trx
      .selectFrom('dead_letters')
      .select(['partition_key', 'seq'])
      .where('trade_id', '=', tradeId)
      .where('replayed_at', 'is', null)
      .where((eb) => eb.or([eb('partition_key', '!=', partitionKey), eb('seq', '!=', String(seq))]))
      .orderBy('created_at', 'desc')
      .executeTakeFirst();
    if (newer) {
      return {
        kind: 'refuse',
        outcome: refused(
          409,
          `trade ${tradeId} was dead-lettered again at seq ${newer.seq} of ${newer.partition_key}: replay that dead letter instead`,
        ),
      };
    }

    let forgot = await deps.admin.forgetTrade(tradeId, partitionKey, seq);
    if (forgot === 'other-delivery') {
      // The marker of a later delivery that had no effect (processed as a
      // duplicate of this dead letter): no trade and no other dead letter
      // holds the tradeId (checked above), so it can go.
      const where = await locateTrade(deps.redis, deps.queue.keys, tradeId);
      forgot =
        where?.state === 'done'
          ? await deps.admin.forgetTrade(tradeId, where.partitionKey, where.seq)
          : where?.state === 'queued'
            ? 'queued'
            : 'absent';
      if (forgot === 'other-delivery') {
        return {
          kind: 'refuse',
          outcome: refused(409, `trade ${tradeId} changed in the queue meanwhile: retry`),
        };
      }
    }
    const replayId = await recordReplayRequest(trx, { partitionKey, seq, tradeId }, by);
    if (forgot === 'queued') {
      const where = await locateTrade(deps.redis, deps.queue.keys, tradeId);
      if (where?.state === 'queued') return { kind: 'adopt', replayId, tradeId, queuedSeq: where.seq };
    }
    return {
      kind: 'enqueue',
      replayId,
      item: { partitionKey, tradeId, payloadHash: payloadHash(trade), body: canonicalTradeJson(trade) },
    };
  });

  if (plan.kind === 'refuse') return plan.outcome;
  if (plan.kind === 'adopt') {
    await recordReplayEnqueued(deps.db, plan.replayId, plan.queuedSeq);
    deps.logger.info(
      { partitionKey, seq, tradeId: plan.tradeId, queuedSeq: plan.queuedSeq, by, action: 'replay' },
      'dead letter replayed: its tradeId was queued again already',
    );
    return done(
      `trade ${plan.tradeId} was already queued again (seq ${plan.queuedSeq}); marked replayed, that delivery will be applied`,
    );
  }
  let result;
  try {
    [result] = await deps.queue.enqueue([plan.item]);
  } catch (err) {
    if (err instanceof BacklogFullError) {
      return refused(
        503,
        `the queue is full (backlog ${err.backlog}, MAX_BACKLOG ${err.limit}): replay again later`,
      );
    }
    throw err;
  }
  if (!result) throw new Error('enqueue returned no result');
  const tradeId = plan.item.tradeId;
  if (result.status === 'conflict') {
    return refused(
      409,
      `another payload with tradeId ${tradeId} was enqueued meanwhile (seq ${result.seq}): not replayed`,
    );
  }
  await recordReplayEnqueued(deps.db, plan.replayId, result.seq);
  deps.logger.info(
    { partitionKey, seq, tradeId, replaySeq: result.seq, status: result.status, by, action: 'replay' },
    'dead letter replayed at the tail of its partition',
  );
  return done(
    result.status === 'queued'
      ? `trade ${tradeId} replayed: queued as seq ${result.seq} at the tail of ${partitionKey}`
      : `trade ${tradeId} was queued again meanwhile (seq ${result.seq}); that delivery will be applied`,
  );
}
