/**
 * The logger's redaction: secrets under the known keys never reach a log line,
 * at the top level, in the usual containers and in HTTP headers.
 */
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level: 'info', name: 'test', destination });
  return { logger, text: () => lines.join('') };
}

test.each([
  ['top level', { password: 'S3CRET-1' }],
  ['a token at the top level', { token: 'S3CRET-1' }],
  ['a request header', { req: { headers: { authorization: 'Bearer S3CRET-1' } } }],
  ['a cookie header', { req: { headers: { cookie: 'sid=S3CRET-1' } } }],
  ['a set-cookie response header', { res: { headers: { 'set-cookie': 'sid=S3CRET-1' } } }],
  ['a config object', { config: { password: 'S3CRET-1' } }],
  ['an error', { err: { token: 'S3CRET-1', message: 'boom' } }],
  ['an auth object', { auth: { apiKey: 'S3CRET-1' } }],
])('%s is redacted', (_name, fields) => {
  const { logger, text } = capture();
  logger.info(fields, 'a line');
  expect(text()).not.toContain('S3CRET-1');
  expect(text()).toContain('[redacted]');
});

test('other fields stay as they are', () => {
  const { logger, text } = capture();
  logger.info({ tradeId: 'T-1', partitionKey: 'A_B_C', seq: 7 }, 'trade queued');
  expect(JSON.parse(text())).toMatchObject({
    tradeId: 'T-1',
    partitionKey: 'A_B_C',
    seq: 7,
    msg: 'trade queued',
  });
});
