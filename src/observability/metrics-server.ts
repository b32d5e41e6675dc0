/**
 * The worker's own small HTTP server for Prometheus: GET /metrics (and HEAD),
 * 404 for anything else. The producer serves /metrics on its API port instead.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** `http://host:port` it listens on. */
  readonly url: string;
  readonly port: number;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  readonly registry: Registry;
  readonly port: number;
  /** @default '0.0.0.0' */
  readonly host?: string;
  /** Called when producing the exposition failed (the scrape gets a 500). */
  readonly onError?: (err: unknown) => void;
}

/** Listens; rejects when the port cannot be bound (e.g. EADDRINUSE). */
export function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const { registry } = opts;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(path === '/metrics' ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(
        path === '/metrics' ? 'method not allowed\n' : 'not found: the worker serves GET /metrics only\n',
      );
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        opts.onError?.(err);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('could not collect the metrics\n');
      },
    );
  });
  // A scraper's keep-alive connection must not hold the shutdown.
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? '0.0.0.0';
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host }, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      let closing: Promise<void> | undefined;
      resolve({
        url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
        port,
        close: () =>
          (closing ??= new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          })),
      });
    });
  });
}
