// The real-server harness lives in src/dev (tradefleet dev uses it too).
export * from '../../src/dev/local-servers';
