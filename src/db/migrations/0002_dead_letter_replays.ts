/**
 * 0002: the record of dead-letter replays (the dashboard's "replay").
 *
 * A replay re-enqueues a dead letter's payload, with its tradeId, at the tail
 * of its partition. `dead_letters.replayed_at` (0001) is what the worker reads
 * (a replayed dead letter is not a prior delivery of the tradeId); this table
 * keeps every replay: who asked, when, and the seq it got in the queue.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('dead_letter_replays')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('partition_key', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('trade_id', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // NULL until the queue accepted the replay (a crash in between leaves it NULL: replay again).
    .addColumn('enqueued_seq', 'bigint')
    .addForeignKeyConstraint(
      'dead_letter_replays_dead_letter_fkey',
      ['partition_key', 'seq'],
      'dead_letters',
      ['partition_key', 'seq'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('dead_letter_replays_dead_letter_idx')
    .on('dead_letter_replays')
    .columns(['partition_key', 'seq'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('dead_letter_replays').execute();
}
