/**
 * Every migration, in order. Names are `NNNN_description`; kysely sorts them by
 * name, so the four-digit number decides the order. Add new migrations here:
 * a static record (not a directory scan) works the same from tsx and from dist/.
 */
import type { Migration } from 'kysely';
import * as m0001 from './0001_initial';
import * as m0002 from './0002_dead_letter_replays';
import * as m0003 from './0003_drop_redundant_trade_index';

export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '0001_initial': m0001,
  '0002_dead_letter_replays': m0002,
  '0003_drop_redundant_trade_index': m0003,
});
