/**
 * 0001: positions, applied trades and dead letters.
 *
 * Migrations take `Kysely<unknown>`: they must keep working when src/db/types.ts
 * later describes a newer schema. Never edit a migration that has been released;
 * add the next number instead.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('positions')
    .addColumn('partition_key', 'text', (c) => c.primaryKey())
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('book_id', 'text', (c) => c.notNull())
    .addColumn('security_id', 'text', (c) => c.notNull())
    .addColumn('currency', 'text')
    .addColumn('net_quantity', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('bought_quantity', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('sold_quantity', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('bought_notional', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('sold_notional', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('trade_count', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('digest', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('lease_epoch', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint(
      'positions_counters_non_negative',
      sql`trade_count >= 0 and last_seq >= 0 and lease_epoch >= 0`,
    )
    .execute();

  await db.schema
    .createTable('trades')
    .addColumn('trade_id', 'text', (c) => c.primaryKey())
    .addColumn('partition_key', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('ref_trade_id', 'text')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('book_id', 'text', (c) => c.notNull())
    .addColumn('security_id', 'text', (c) => c.notNull())
    .addColumn('side', 'text')
    .addColumn('quantity', 'numeric')
    .addColumn('price', 'numeric')
    .addColumn('currency', 'text')
    .addColumn('trade_time', 'timestamptz', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('payload_hash', 'text', (c) => c.notNull())
    .addColumn('enqueued_at', 'timestamptz', (c) => c.notNull())
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('eff_side', 'text')
    .addColumn('eff_quantity', 'numeric')
    .addColumn('eff_price', 'numeric')
    .addColumn('eff_currency', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addUniqueConstraint('trades_partition_key_seq_key', ['partition_key', 'seq'])
    .addCheckConstraint('trades_seq_positive', sql`seq > 0`)
    .addCheckConstraint('trades_type_valid', sql`type in ('NEW', 'AMEND', 'CANCEL')`)
    .addCheckConstraint(
      'trades_side_valid',
      sql`side in ('BUY', 'SELL') and (eff_side is null or eff_side in ('BUY', 'SELL'))`,
    )
    // A NEW row is live or cancelled; an AMEND or CANCEL row records itself.
    .addCheckConstraint(
      'trades_status_matches_type',
      sql`(type = 'NEW' and status in ('live', 'cancelled'))
        or (type = 'AMEND' and status = 'amend')
        or (type = 'CANCEL' and status = 'cancel')`,
    )
    // AMEND and CANCEL point at the NEW trade they change; NEW points at nothing.
    .addCheckConstraint('trades_ref_matches_type', sql`(type = 'NEW') = (ref_trade_id is null)`)
    // Effective terms belong to NEW rows only.
    .addCheckConstraint(
      'trades_eff_only_on_new',
      sql`type = 'NEW' or (eff_side is null and eff_quantity is null and eff_price is null and eff_currency is null)`,
    )
    .execute();

  await db.schema
    .createIndex('trades_partition_key_trade_id_idx')
    .on('trades')
    .columns(['partition_key', 'trade_id'])
    .execute();

  await db.schema
    .createTable('dead_letters')
    .addColumn('trade_id', 'text', (c) => c.notNull())
    .addColumn('partition_key', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('payload_hash', 'text', (c) => c.notNull())
    .addColumn('reason_code', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('replayed_at', 'timestamptz')
    // Keyed by queue position, not tradeId: one tradeId can be dead-lettered
    // more than once (a second conflicting payload, a replay that fails again).
    .addPrimaryKeyConstraint('dead_letters_pkey', ['partition_key', 'seq'])
    .addCheckConstraint('dead_letters_seq_positive', sql`seq > 0`)
    .execute();
  await db.schema.createIndex('dead_letters_trade_id_idx').on('dead_letters').column('trade_id').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('dead_letters').execute();
  await db.schema.dropTable('trades').execute();
  await db.schema.dropTable('positions').execute();
}
