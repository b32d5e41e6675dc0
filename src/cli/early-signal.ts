/**
 * The signal bin/tradefleet.js recorded while the process was still loading,
 * if any; also stops recording. A service calls it right after installing its
 * own SIGTERM/SIGINT handlers and, when it gets one, shuts down at once.
 */
export function takeEarlySignal(): NodeJS.Signals | undefined {
  const early = (globalThis as { __tradefleetEarlySignal?: { take(): NodeJS.Signals | undefined } })
    .__tradefleetEarlySignal;
  return early?.take();
}
