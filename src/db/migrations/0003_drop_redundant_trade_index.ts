/**
 * 0003: drops trades_partition_key_trade_id_idx (0001).
 *
 * Every query of trades by partition is served by the unique
 * (partition_key, seq) index, and every query by tradeId by the primary key;
 * this third index only cost a b-tree insert per applied trade (measured with
 * bench/profile.ts: the trades INSERT is most of PostgreSQL's time per trade).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('trades_partition_key_trade_id_idx').ifExists().execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('trades_partition_key_trade_id_idx')
    .on('trades')
    .columns(['partition_key', 'trade_id'])
    .execute();
}
