/**
 * Group commit: the batches a worker's drains hand over at about the same time
 * go to PostgreSQL together, in one transaction (applyBatches), each partition
 * still fenced and judged on its own. One fsynced commit then carries the
 * trades of many partitions, which is what lets a trickle spread over many
 * partitions (one trade per drain) go faster than one commit per trade.
 *
 * Scheduling is adaptive, with no timer: a batch that arrives while fewer
 * than `maxInFlight` transactions run goes at once (low latency when idle);
 * batches that arrive while they run wait and leave together in the next
 * transaction (large groups under load). A group never holds two batches of
 * one partition.
 *
 * Failure isolation: a group that fails on an error that is not transient
 * (a tradeId race, an unexpected database error) is split and each batch is
 * tried alone, so that one partition's trouble is not every partition's.
 */
import type { Batch } from '../queue';
import type { ApplyResult, BatchOutcome } from './apply';

export interface GroupCommitOptions {
  /** Applies one group (with its retries) and answers one outcome per batch, in order. */
  readonly execute: (batches: Batch[]) => Promise<BatchOutcome[]>;
  /** Whether an error thrown by `execute` may succeed if tried again as it is (then the group is not split). */
  readonly isTransient: (err: unknown) => boolean;
  /** Most batches (partitions) per transaction. @default 128 */
  readonly maxBatches?: number;
  /** Most trades per transaction; a single larger batch still goes alone. @default 1024 */
  readonly maxTrades?: number;
  /** Group transactions running at once (each holds a PostgreSQL connection). @default 3 */
  readonly maxInFlight?: number;
}

interface Pending {
  readonly batch: Batch;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommitter {
  private queue: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly maxBatches: number;
  private readonly maxTrades: number;
  private readonly maxInFlight: number;

  constructor(private readonly opts: GroupCommitOptions) {
    this.maxBatches = Math.max(1, opts.maxBatches ?? 128);
    this.maxTrades = Math.max(1, opts.maxTrades ?? 1024);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 3);
  }

  /** Batches waiting for a transaction. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Applies `batch` in some group's transaction. Resolves once that
   * transaction committed; rejects with the batch's FencedError or
   * HaltPartitionError (see BatchOutcome), or with the error that failed it.
   */
  submit(batch: Batch): Promise<ApplyResult> {
    return new Promise<ApplyResult>((resolve, reject) => {
      this.queue.push({ batch, resolve, reject });
      // Batches handed over in the same turn of the event loop leave together.
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const group = this.take();
      this.inFlight++;
      void this.run(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** The next group, oldest first; what does not fit (or repeats a partition) keeps its place. */
  private take(): Pending[] {
    const group: Pending[] = [];
    const rest: Pending[] = [];
    const keys = new Set<string>();
    let trades = 0;
    for (const p of this.queue) {
      const n = p.batch.items.length;
      const fits =
        group.length === 0 ||
        (group.length < this.maxBatches && trades + n <= this.maxTrades && !keys.has(p.batch.partitionKey));
      if (fits) {
        group.push(p);
        keys.add(p.batch.partitionKey);
        trades += n;
      } else {
        rest.push(p);
        // Reserved: a later batch of this partition must not overtake it.
        keys.add(p.batch.partitionKey);
      }
    }
    this.queue = rest;
    return group;
  }

  private async run(group: Pending[]): Promise<void> {
    let outcomes: BatchOutcome[];
    try {
      outcomes = await this.opts.execute(group.map((p) => p.batch));
    } catch (err) {
      if (group.length > 1 && !this.opts.isTransient(err)) {
        for (const p of group) await this.run([p]);
        return;
      }
      for (const p of group) p.reject(err);
      return;
    }
    group.forEach((p, i) => {
      const o = outcomes[i];
      if (!o) p.reject(new Error(`group commit: no outcome for partition ${p.batch.partitionKey}`));
      else if (o.ok) p.resolve(o.result);
      else p.reject(o.error);
    });
  }
}
