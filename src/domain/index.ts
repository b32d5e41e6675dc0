/**
 * The trade domain: schema and validation, partition key, exact decimals and
 * the position fold. Pure code with no I/O, so producer, worker, CLI and
 * tests share one definition of what a trade is and what it does.
 */
export * from './currencies';
export * from './decimal';
export * from './partition';
export * from './position';
export * from './trade';
export { sha256Hex } from './hash';
