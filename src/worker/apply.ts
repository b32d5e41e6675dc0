/**
 * Applies batches of several partitions to PostgreSQL in one transaction, each
 * partition fenced on its own (a group commit).
 *
 * Each position row is its partition's lock and its fence: the transaction
 * takes the rows FOR UPDATE (in key order), drops the batch of any partition a
 * newer lease wrote (epoch), applies only trades past each row's `last_seq`
 * (seq), and advances `last_seq` in the same commit as the trades, the dead
 * letters and the new totals. A redelivered or zombie batch therefore changes
 * nothing (I2, I4), and a gap in the seqs is never applied across (I1). One
 * partition's verdict (fenced, halted) does not change another's.
 *
 * Round trips per group, whatever the number of partitions and trades: begin,
 * lock (plus create and lock for partitions seen for the first time), one
 * lookup, then at most one statement per table written, commit.
 */
import { sha256Hex } from '../domain/hash';
import type { Kysely } from 'kysely';

import type { PermanentFailurePolicy } from '../config/variables';
import {
  ensurePosition,
  insertDeadLetters,
  lockPosition,
  lockPositionsAndFindKnown,
  writeGroup,
  writeLockedPosition,
  type Database,
  type EffectiveStateUpdate,
  type Executor,
  type JsonObject,
  type KnownTradeId,
  type NewDeadLetterRecord,
  type NewPositionRecord,
  type NewTradeRecord,
  type PositionRecord,
} from '../db';
import {
  canonicalTradeJson,
  emptyPosition,
  foldTrade,
  parsePartitionKey,
  skipSeq,
  validateTrade,
  type EffectiveTrade,
  type FoldRejectionCode,
  type PartitionIds,
  type Position,
  type Trade,
} from '../domain';
import { HaltPartitionError, type Batch, type QueuedItem } from '../queue';

/**
 * Why a trade is refused for good. Retrying it against the same state gives
 * the same answer, so the policy dead-letters it or halts its partition.
 * - the fold's codes (`unknown_ref`, `ref_cancelled`, `currency_mismatch`, `duplicate_trade`)
 * - `invalid_payload`: the body is not JSON, fails validateTrade, or names
 *   another tradeId or partition than its queue entry
 * - `conflict`: the tradeId was already applied or dead-lettered with another payload
 */
export type ApplyRejectionCode = FoldRejectionCode | 'invalid_payload' | 'conflict';

export const APPLY_REJECTION_CODES: readonly ApplyRejectionCode[] = [
  'duplicate_trade',
  'unknown_ref',
  'ref_cancelled',
  'currency_mismatch',
  'invalid_payload',
  'conflict',
];

/**
 * Codes of a HaltPartitionError raised by applyBatch whatever the policy,
 * because going on would break ordering or lose a trade:
 * - `seq_gap`: the next seq offered is past `last_seq + 1` (lost trades, e.g.
 *   Redis lost its state)
 * - `seq_regression`: a trade offered at or below `last_seq` that PostgreSQL
 *   never saw (Redis restarted its seq counters): skipping it would lose it
 * - `invalid_partition_key`: the batch's key is not one partitionKey() builds
 */
export const APPLY_HALT_CODES = ['seq_gap', 'seq_regression', 'invalid_partition_key'] as const;
export type ApplyHaltCode = (typeof APPLY_HALT_CODES)[number];

/**
 * The stored lease epoch is newer than the batch's: another worker took the
 * partition after this one lost its lease. Nothing was committed; the caller
 * must drop the batch (its ack will be refused in Redis as well).
 */
export class FencedError extends Error {
  readonly code = 'fenced';
  constructor(
    readonly partitionKey: string,
    readonly batchEpoch: number,
    readonly storedEpoch: number,
  ) {
    super(
      `partition ${partitionKey}: batch of lease epoch ${batchEpoch} refused, the position was written under epoch ${storedEpoch}; ` +
        'this worker lost its lease',
    );
    this.name = 'FencedError';
  }
}

export interface ApplyOptions {
  /** What a permanently refused trade does: recorded and skipped, or stops the partition. */
  readonly policy: PermanentFailurePolicy;
}

/** A trade dead-lettered by this batch. */
export interface DeadLetterInfo {
  readonly tradeId: string;
  readonly seq: number;
  readonly code: ApplyRejectionCode;
  readonly reason: string;
}

export interface ApplyResult {
  /** Trades folded into the position (NEW, AMEND and CANCEL each count one). */
  readonly applied: number;
  readonly deadLettered: number;
  /** Re-deliveries of a tradeId already applied or dead-lettered with the same payload: no effect, seq consumed. */
  readonly duplicates: number;
  /** Items at or below the stored last_seq: already committed by an earlier delivery. */
  readonly skipped: number;
  /** The position's last_seq after the commit. */
  readonly lastSeq: number;
  /** The dead letters written, for logs and metrics. */
  readonly deadLetters: readonly DeadLetterInfo[];
}

/** A body parsed and re-validated, or why it cannot be. */
type Parsed =
  | { ok: true; trade: Trade; payloadJson: string; hash: string }
  | { ok: false; reason: string; payload: JsonObject; hash: string };

const sha256 = sha256Hex;

function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The producer validated the trade already; validating again costs little and
 * means a corrupted or hand-pushed entry is refused with a reason instead of
 * being folded. The hash is over the canonical JSON (as payloadHash does), so
 * it compares with what earlier deliveries stored.
 */
export function parseBody(item: QueuedItem, ids: PartitionIds & { partitionKey: string }): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(item.body);
  } catch (err) {
    return {
      ok: false,
      reason: `body of trade ${item.tradeId} (seq ${item.seq}) is not JSON: ${(err as Error).message}`,
      payload: { raw: item.body },
      hash: sha256(item.body),
    };
  }
  const asPayload: JsonObject = isJsonObject(value) ? value : { raw: item.body };
  const result = validateTrade(value);
  if (!result.ok) {
    const problems = result.errors.map((e) => e.message).join('; ');
    return {
      ok: false,
      reason: `trade ${item.tradeId} (seq ${item.seq}) fails validation: ${problems}`,
      payload: asPayload,
      hash: sha256(item.body),
    };
  }
  const trade = result.trade;
  // The producer queues the canonical JSON: then the body is it, byte for byte.
  const canonical = canonicalTradeJson(trade);
  const hash = sha256(canonical);
  const refused = (reason: string): Parsed => ({
    ok: false,
    reason,
    payload: JSON.parse(canonical) as JsonObject,
    hash,
  });
  if (trade.tradeId !== item.tradeId) {
    return refused(
      `queue entry seq ${item.seq} is for trade ${item.tradeId} but its body is trade ${trade.tradeId}`,
    );
  }
  if (
    trade.accountId !== ids.accountId ||
    trade.bookId !== ids.bookId ||
    trade.securityId !== ids.securityId
  ) {
    return refused(
      `trade ${trade.tradeId} (account ${trade.accountId}, book ${trade.bookId}, security ${trade.securityId}) ` +
        `was queued in partition ${ids.partitionKey}`,
    );
  }
  return { ok: true, trade, payloadJson: canonical, hash };
}

/** The payload of a parsed body as a JSON object (for a dead letter). */
function payloadOf(p: Parsed): JsonObject {
  return p.ok ? (JSON.parse(p.payloadJson) as JsonObject) : p.payload;
}

function toPosition(row: PositionRecord): Position {
  return {
    partitionKey: row.partitionKey,
    accountId: row.accountId,
    bookId: row.bookId,
    securityId: row.securityId,
    currency: row.currency,
    netQuantity: row.netQuantity,
    boughtQuantity: row.boughtQuantity,
    soldQuantity: row.soldQuantity,
    boughtNotional: row.boughtNotional,
    soldNotional: row.soldNotional,
    tradeCount: row.tradeCount,
    lastSeq: row.lastSeq,
    digest: row.digest,
  };
}

function effectiveFromRow(row: KnownTradeId): EffectiveTrade | undefined {
  if (row.effSide === null || row.effQuantity === null || row.effPrice === null || row.effCurrency === null) {
    return undefined;
  }
  if (row.status !== 'live' && row.status !== 'cancelled') return undefined;
  return {
    tradeId: row.tradeId,
    side: row.effSide,
    quantity: row.effQuantity,
    price: row.effPrice,
    currency: row.effCurrency,
    status: row.status,
  };
}

function sameEffective(a: EffectiveTrade, b: EffectiveTrade): boolean {
  return (
    a.side === b.side &&
    a.quantity === b.quantity &&
    a.price === b.price &&
    a.currency === b.currency &&
    a.status === b.status
  );
}

function tradeRecord(
  trade: Trade,
  item: QueuedItem,
  partitionKey: string,
  payloadJson: string,
  hash: string,
): NewTradeRecord {
  const isNew = trade.type === 'NEW';
  return {
    tradeId: trade.tradeId,
    partitionKey,
    seq: item.seq,
    type: trade.type,
    refTradeId: trade.type === 'NEW' ? null : trade.refTradeId,
    accountId: trade.accountId,
    bookId: trade.bookId,
    securityId: trade.securityId,
    side: trade.side ?? null,
    quantity: trade.quantity ?? null,
    price: trade.price ?? null,
    currency: trade.currency ?? null,
    tradeTime: trade.tradeTime,
    payload: payloadJson,
    payloadHash: hash,
    enqueuedAt: new Date(item.enqueuedAt),
    // Filled from the final effective state at write time (an AMEND later in the batch may change it).
    effSide: isNew ? trade.side : null,
    effQuantity: isNew ? trade.quantity : null,
    effPrice: isNew ? trade.price : null,
    effCurrency: isNew ? trade.currency : null,
    status: trade.type === 'NEW' ? 'live' : trade.type === 'AMEND' ? 'amend' : 'cancel',
  };
}

/** What one batch of a group comes to: its result, or why it was refused. */
export type BatchOutcome =
  | { readonly ok: true; readonly result: ApplyResult }
  /**
   * `FencedError`: nothing of the batch was written. `HaltPartitionError`:
   * what came before `reason.seq` is committed (see HaltPartitionError).
   */
  | { readonly ok: false; readonly error: FencedError | HaltPartitionError };

/** What PostgreSQL (or this group so far) already holds under a tradeId. */
interface Seen {
  /** Payload hashes of the trade and of its dead letters (a conflict's differs). */
  readonly hashes: Set<string>;
  /** For messages: "applied at seq 12 of partition P". */
  where: string;
}

type Ids = PartitionIds & { partitionKey: string };

/** A batch whose partition key parsed, in the group's key order. */
interface Member {
  readonly index: number;
  readonly batch: Batch;
  readonly ids: Ids;
}

/** What the group's statements write for one batch, and the batch's verdict. */
interface Plan {
  readonly tradeRows: NewTradeRecord[];
  readonly updates: (EffectiveStateUpdate & { partitionKey: string })[];
  readonly deadLetters: NewDeadLetterRecord[];
  /** The position to write, when it changed (seq advanced or a newer epoch). */
  readonly position?: NewPositionRecord;
  readonly outcome: BatchOutcome;
}

/**
 * Applies one batch in its own READ COMMITTED transaction (see the file header).
 *
 * @throws FencedError when a newer lease wrote the position (nothing committed)
 * @throws HaltPartitionError with code `seq_gap` / `seq_regression` /
 *   `invalid_partition_key` whatever the policy, or with
 *   the rejection code under the `halt` policy; what came before the offending
 *   trade is committed first, so a resumed partition skips it by seq.
 * Database errors propagate as they are (see retry.ts for which are transient).
 */
export async function applyBatch(
  db: Kysely<Database>,
  batch: Batch,
  opts: ApplyOptions,
): Promise<ApplyResult> {
  const [outcome] = await applyBatches(db, [batch], opts);
  if (!outcome!.ok) throw outcome!.error;
  return outcome!.result;
}

/**
 * Applies batches of different partitions in ONE READ COMMITTED transaction,
 * each fenced and judged on its own: the answer has one outcome per batch, in
 * the order given. A database error (or a race lost on a tradeId) rolls back
 * the whole group and propagates: nothing of any batch is committed.
 *
 * @throws Error when two batches are of the same partition (a caller bug).
 */
export async function applyBatches(
  db: Kysely<Database>,
  batches: readonly Batch[],
  opts: ApplyOptions,
): Promise<BatchOutcome[]> {
  const outcomes: BatchOutcome[] = new Array<BatchOutcome>(batches.length);
  const members: Member[] = [];
  const keys = new Set<string>();
  batches.forEach((batch, index) => {
    if (keys.has(batch.partitionKey)) {
      throw new Error(`applyBatches: two batches of partition ${batch.partitionKey} in one group`);
    }
    keys.add(batch.partitionKey);
    try {
      const ids = { ...parsePartitionKey(batch.partitionKey), partitionKey: batch.partitionKey };
      members.push({ index, batch, ids });
    } catch (err) {
      outcomes[index] = {
        ok: false,
        error: new HaltPartitionError({ code: 'invalid_partition_key', message: (err as Error).message }),
      };
    }
  });
  if (members.length === 0) return outcomes;
  members.sort((a, b) => compareKeys(a.ids.partitionKey, b.ids.partitionKey));
  const planned = await db
    .transaction()
    .setIsolationLevel('read committed')
    .execute((trx) => applyInTransaction(trx, members, opts));
  members.forEach((m, n) => (outcomes[m.index] = planned[n]!));
  return outcomes;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function lockOrCreate(trx: Executor, ids: Ids): Promise<PositionRecord> {
  // Lock first: the row exists for every batch but a partition's first.
  const existing = await lockPosition(trx, ids.partitionKey);
  if (existing) return existing;
  await ensurePosition(trx, ids);
  const created = await lockPosition(trx, ids.partitionKey);
  if (!created) throw new Error(`position ${ids.partitionKey} vanished right after it was created`);
  return created;
}

/**
 * Locks the group's rows and looks up its tradeIds in one round trip (see
 * lockPositionsAndFindKnown). A partition without a row starts from the
 * empty position and its row is INSERTed by the group's write (writeGroup):
 * one statement locks the whole group, whether its partitions are new or not.
 */
async function lockAll(
  trx: Executor,
  members: readonly Member[],
  tradeIds: Iterable<string>,
): Promise<{ rows: Map<string, PositionRecord>; created: Set<string>; known: KnownTradeId[] }> {
  const rows = new Map<string, PositionRecord>();
  const locked = await lockPositionsAndFindKnown(
    trx,
    members.map((m) => m.ids.partitionKey),
    tradeIds,
  );
  for (const r of locked.positions) rows.set(r.partitionKey, r);
  const created = new Set<string>();
  for (const m of members) {
    if (rows.has(m.ids.partitionKey)) continue;
    const empty = emptyPosition(m.ids.accountId, m.ids.bookId, m.ids.securityId);
    rows.set(m.ids.partitionKey, {
      ...empty,
      partitionKey: m.ids.partitionKey,
      leaseEpoch: 0,
      updatedAt: new Date(0),
    });
    created.add(m.ids.partitionKey);
  }
  return { rows, created, known: locked.known };
}

/**
 * Another transaction created a position this one found missing (only a
 * zombie lease racing the current one can): everything rolls back and the
 * group is tried again, when the row exists and is locked like any other.
 * SQLSTATE 40001 makes it a transient error for the retry loop.
 */
export class PositionRaceError extends Error {
  readonly code = '40001';
  constructor(readonly partitionKeys: readonly string[]) {
    super(
      `position(s) ${partitionKeys.join(', ')} were created by another transaction meanwhile; retrying the group`,
    );
    this.name = 'PositionRaceError';
  }
}

async function applyInTransaction(
  trx: Executor,
  members: readonly Member[],
  opts: ApplyOptions,
): Promise<BatchOutcome[]> {
  // Every body is parsed before the read, so that one round trip both locks
  // the rows and finds every tradeId the batches name or refer to. (Items at
  // or below a row's last_seq, redeliveries, are parsed for nothing: rare.)
  const lookupIds = new Set<string>();
  const parsedAll = members.map((m) =>
    m.batch.items.map((item) => {
      lookupIds.add(item.tradeId);
      const p = parseBody(item, m.ids);
      if (p.ok && p.trade.type !== 'NEW') lookupIds.add(p.trade.refTradeId);
      return p;
    }),
  );
  const { rows, created, known } = await lockAll(trx, members, lookupIds);

  const inputs = members.map((m, n) => {
    const row = rows.get(m.ids.partitionKey)!;
    if (row.leaseEpoch > m.batch.epoch) return { m, row, fenced: true as const };
    const old: QueuedItem[] = [];
    const fresh: QueuedItem[] = [];
    const parsed: Parsed[] = [];
    m.batch.items.forEach((item, i) => {
      if (item.seq <= row.lastSeq) old.push(item);
      else {
        fresh.push(item);
        parsed.push(parsedAll[n]![i]!);
      }
    });
    return { m, row, fenced: false as const, old, fresh, parsed };
  });

  // One view of every tradeId for the whole group, updated batch by batch in
  // key order: a tradeId applied by an earlier batch of the group is known to
  // the later ones exactly as if that batch had committed on its own.
  const seen = new Map<string, Seen>();
  const remember = (tradeId: string, hash: string, where: string) => {
    const entry = seen.get(tradeId);
    if (entry) entry.hashes.add(hash);
    else seen.set(tradeId, { hashes: new Set([hash]), where });
  };
  const knownIds = new Set<string>();
  const knownNew = new Map<string, KnownTradeId[]>();
  // Trades first, so that messages name the applied trade rather than a conflict's dead letter.
  for (const k of [...known].sort((x, y) => (x.source === y.source ? 0 : x.source === 'trade' ? -1 : 1))) {
    knownIds.add(k.tradeId);
    if (k.source === 'dead_letter') {
      // A replayed dead letter handed its tradeId back to the queue: the replay
      // is the next delivery, not a repeat of this one (see src/dashboard/actions.ts).
      if (!k.replayed) {
        remember(k.tradeId, k.payloadHash, `dead-lettered at seq ${k.seq} of partition ${k.partitionKey}`);
      }
      continue;
    }
    remember(k.tradeId, k.payloadHash, `applied at seq ${k.seq} of partition ${k.partitionKey}`);
    if (k.type === 'NEW') {
      const list = knownNew.get(k.partitionKey);
      if (list) list.push(k);
      else knownNew.set(k.partitionKey, [k]);
    }
  }

  const plans = inputs.map((input): Plan => {
    if (input.fenced) {
      const error = new FencedError(input.m.ids.partitionKey, input.m.batch.epoch, input.row.leaseEpoch);
      return { tradeRows: [], updates: [], deadLetters: [], outcome: { ok: false, error } };
    }
    return planBatch(input.m, input.row, input.old, input.fresh, input.parsed, {
      knownIds,
      knownNew: knownNew.get(input.m.ids.partitionKey) ?? [],
      seen,
      remember,
      opts,
    });
  });

  // Partitions seen for the first time get their rows first (writeGroup): a
  // transaction racing this one on a new partition (a zombie lease) then
  // waits on the row and loses with PositionRaceError (40001, retried).
  const positions = plans.flatMap((p) => (p.position ? [p.position] : []));
  const newPositions = positions.filter((p) => created.has(p.partitionKey));
  const existing = positions.filter((p) => !created.has(p.partitionKey));
  const tradeRows = plans.flatMap((p) => p.tradeRows);
  const updates = plans.flatMap((p) => p.updates);
  const deadLetters = plans.flatMap((p) => p.deadLetters);
  const written = await writeGroup(trx, {
    newPositions,
    trades: tradeRows,
    effectiveUpdates: updates,
    deadLetters,
    positions: existing,
  });
  // Any difference rolls the whole group back (the error leaves the transaction).
  if (written.newPositionKeys.length !== newPositions.length) {
    const inserted = new Set(written.newPositionKeys);
    throw new PositionRaceError(newPositions.map((p) => p.partitionKey).filter((k) => !inserted.has(k)));
  }
  if (written.tradeIds.length !== tradeRows.length) {
    // Another transaction committed one of these tradeIds since the lookup.
    // Roll back; the next attempt sees it and treats it as a conflict.
    const got = new Set(written.tradeIds);
    const lost = tradeRows.filter((t) => !got.has(t.tradeId));
    throw new Error(
      `tradeId(s) ${lost.map((t) => `${t.tradeId} (partition ${t.partitionKey})`).join(', ')} ` +
        'were inserted concurrently by another transaction; retry the batch',
    );
  }
  if (written.effectiveUpdates !== updates.length) {
    throw new Error(
      `updated ${written.effectiveUpdates} of ${updates.length} referenced trades of partition(s) ` +
        `${[...new Set(updates.map((u) => u.partitionKey))].join(', ')}; the table changed under the lock`,
    );
  }
  if (written.deadLetters !== deadLetters.length) {
    throw new Error(
      `${deadLetters.length - written.deadLetters} dead letter(s) of partition(s) ` +
        `${[...new Set(deadLetters.map((d) => d.partitionKey))].join(', ')} were inserted concurrently; retry the batch`,
    );
  }
  if (written.positions !== existing.length) {
    throw new Error(
      `wrote ${written.positions} of ${existing.length} locked positions; a position row vanished`,
    );
  }
  return plans.map((p) => p.outcome);
}

interface GroupView {
  /** Every tradeId PostgreSQL holds among the group's lookups. */
  readonly knownIds: ReadonlySet<string>;
  /** The NEW trades of this batch's partition among the lookups. */
  readonly knownNew: readonly KnownTradeId[];
  readonly seen: Map<string, Seen>;
  readonly remember: (tradeId: string, hash: string, where: string) => void;
  readonly opts: ApplyOptions;
}

/** Folds one unfenced batch over its locked position: what to write and the verdict. Pure but for `view.seen`. */
function planBatch(
  m: Member,
  row: PositionRecord,
  old: readonly QueuedItem[],
  fresh: readonly QueuedItem[],
  parsed: readonly Parsed[],
  view: GroupView,
): Plan {
  const pk = m.ids.partitionKey;
  const batch = m.batch;
  const nothing = { tradeRows: [], updates: [], deadLetters: [] };

  // A seq at or below last_seq is normally a redelivery of what was committed.
  // Every consumed seq leaves its tradeId in trades or dead_letters, so an id
  // found in neither was never seen here: Redis must have reset its counters.
  const unseen = old.find((i) => !view.knownIds.has(i.tradeId));
  if (unseen) {
    return {
      ...nothing,
      outcome: {
        ok: false,
        error: new HaltPartitionError({
          code: 'seq_regression',
          message:
            `partition ${pk}: trade ${unseen.tradeId} was offered at seq ${unseen.seq}, at or below last_seq ${row.lastSeq}, ` +
            'but was never applied or dead-lettered: the queue probably lost its state (seq counter reset); ' +
            'skipping it would lose the trade',
          tradeId: unseen.tradeId,
          seq: unseen.seq,
        }),
      },
    };
  }

  const effective = new Map<string, EffectiveTrade>();
  const loaded = new Map<string, EffectiveTrade>();
  for (const k of view.knownNew) {
    const eff = effectiveFromRow(k);
    if (eff) {
      effective.set(k.tradeId, eff);
      loaded.set(k.tradeId, eff);
    }
  }

  let position = toPosition(row);
  const tradeRows: NewTradeRecord[] = [];
  const deadLetters: NewDeadLetterRecord[] = [];
  const deadLetterInfos: DeadLetterInfo[] = [];
  let applied = 0;
  let duplicates = 0;
  let halt: HaltPartitionError['reason'] | undefined;

  for (let n = 0; n < fresh.length; n++) {
    const item = fresh[n]!;
    const p = parsed[n]!;
    if (item.seq !== position.lastSeq + 1) {
      halt = {
        code: 'seq_gap',
        message:
          `partition ${pk}: expected seq ${position.lastSeq + 1} after last_seq ${position.lastSeq}, the queue offered ${item.seq}; ` +
          'trades in between are missing (the queue lost data?): nothing past the gap is applied',
        tradeId: item.tradeId,
        seq: item.seq,
      };
      break;
    }

    let rejection: { code: ApplyRejectionCode; reason: string } | undefined;
    const prior = view.seen.get(item.tradeId);
    if (prior?.hashes.has(p.hash)) {
      // Delivered again after the queue's dedup window: already has its effect.
      position = skipSeq(position, item.seq);
      duplicates++;
      continue;
    }
    if (prior) {
      rejection = {
        code: 'conflict',
        reason: `trade ${item.tradeId} (seq ${item.seq}) reuses a tradeId already ${prior.where} with another payload`,
      };
    } else if (!p.ok) {
      rejection = { code: 'invalid_payload', reason: p.reason };
    } else {
      const folded = foldTrade(position, p.trade, item.seq, (id) => effective.get(id));
      if (folded.ok) {
        position = folded.position;
        for (const u of folded.upserts) effective.set(u.tradeId, u);
        tradeRows.push(tradeRecord(p.trade, item, pk, p.payloadJson, p.hash));
        view.remember(item.tradeId, p.hash, `applied at seq ${item.seq} of partition ${pk}`);
        applied++;
        continue;
      }
      rejection = { code: folded.code, reason: folded.reason };
    }

    if (view.opts.policy === 'halt') {
      halt = { code: rejection.code, message: rejection.reason, tradeId: item.tradeId, seq: item.seq };
      break;
    }
    deadLetters.push({
      tradeId: item.tradeId,
      partitionKey: pk,
      seq: item.seq,
      payload: payloadOf(p),
      payloadHash: p.hash,
      reasonCode: rejection.code,
      reason: rejection.reason,
    });
    deadLetterInfos.push({
      tradeId: item.tradeId,
      seq: item.seq,
      code: rejection.code,
      reason: rejection.reason,
    });
    // A later item with this id is a duplicate of the dead letter (or a conflict with it).
    view.remember(item.tradeId, p.hash, `dead-lettered at seq ${item.seq} of partition ${pk}`);
    position = skipSeq(position, item.seq);
  }

  // NEW rows carry their final state; NEW rows loaded from the table that changed are updated.
  const finalRows = tradeRows.map((t) => {
    const eff = t.type === 'NEW' ? effective.get(t.tradeId) : undefined;
    return eff
      ? {
          ...t,
          effSide: eff.side,
          effQuantity: eff.quantity,
          effPrice: eff.price,
          effCurrency: eff.currency,
          status: eff.status,
        }
      : t;
  });
  const updates: Plan['updates'] = [];
  for (const [id, before] of loaded) {
    const after = effective.get(id)!;
    if (!sameEffective(before, after)) {
      updates.push({
        tradeId: id,
        partitionKey: pk,
        effSide: after.side,
        effQuantity: after.quantity,
        effPrice: after.price,
        effCurrency: after.currency,
        status: after.status,
      });
    }
  }

  const advanced = position.lastSeq !== row.lastSeq;
  const result: ApplyResult = {
    applied,
    deadLettered: deadLetters.length,
    duplicates,
    skipped: old.length,
    lastSeq: position.lastSeq,
    deadLetters: deadLetterInfos,
  };
  return {
    tradeRows: finalRows,
    updates,
    deadLetters,
    ...(advanced || batch.epoch > row.leaseEpoch
      ? { position: { ...position, leaseEpoch: Math.max(batch.epoch, row.leaseEpoch) } }
      : {}),
    outcome: halt ? { ok: false, error: new HaltPartitionError(halt) } : { ok: true, result },
  };
}

export interface SkipTradeInput {
  readonly partitionKey: string;
  /** The head of the halted partition, as readHead returns it. */
  readonly item: QueuedItem;
  readonly reasonCode: string;
  readonly reason: string;
}

/**
 * For an operator skipping the head of a halted partition: records the trade
 * as a dead letter and advances last_seq past it, in one transaction, so that
 * the partition resumes without a seq gap. Call it BEFORE PartitionAdmin.skipHead
 * (which removes the trade from Redis); calling it twice is harmless.
 *
 * Returns 'skipped', or 'already-consumed' when last_seq is already at or past
 * the item (applied, dead-lettered or skipped before).
 * @throws HaltPartitionError `seq_gap` when the item is not the next seq.
 */
export async function skipTrade(
  db: Kysely<Database>,
  input: SkipTradeInput,
): Promise<'skipped' | 'already-consumed'> {
  const ids = { ...parsePartitionKey(input.partitionKey), partitionKey: input.partitionKey };
  return db
    .transaction()
    .setIsolationLevel('read committed')
    .execute(async (trx) => {
      const row = await lockOrCreate(trx, ids);
      if (input.item.seq <= row.lastSeq) return 'already-consumed';
      if (input.item.seq !== row.lastSeq + 1) {
        throw new HaltPartitionError({
          code: 'seq_gap',
          message: `partition ${ids.partitionKey}: cannot skip seq ${input.item.seq}, the next is ${row.lastSeq + 1}`,
          tradeId: input.item.tradeId,
          seq: input.item.seq,
        });
      }
      const p = parseBody(input.item, ids);
      await insertDeadLetters(trx, [
        {
          tradeId: input.item.tradeId,
          partitionKey: ids.partitionKey,
          seq: input.item.seq,
          payload: payloadOf(p),
          payloadHash: p.hash,
          reasonCode: input.reasonCode,
          reason: input.reason,
        },
      ]);
      await writeLockedPosition(trx, {
        ...skipSeq(toPosition(row), input.item.seq),
        leaseEpoch: row.leaseEpoch,
      });
      return 'skipped';
    });
}
