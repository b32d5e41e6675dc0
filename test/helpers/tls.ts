/**
 * A throwaway certificate authority and a server certificate for 127.0.0.1 /
 * localhost, made with the `openssl` command, for tests that run Redis and
 * PostgreSQL with TLS.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCerts {
  readonly dir: string;
  /** The CA certificate (PEM): what clients must trust. */
  readonly caFile: string;
  /** The server certificate, signed by the CA, for IP 127.0.0.1 and DNS localhost. */
  readonly certFile: string;
  readonly keyFile: string;
  /** Another CA's certificate: trusting it must not make the server trusted. */
  readonly otherCaFile: string;
}

/** True when the `openssl` command is available. */
export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Writes a CA, a server certificate and an unrelated CA into `dir` (EC P-256 keys, valid for a day). */
export function makeTestCerts(dir: string): TestCerts {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const name of ['ca', 'other-ca']) {
    openssl(dir, [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=tradefleet test ${name}`,
    ]);
  }
  openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  fs.writeFileSync(
    path.join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
  );
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '1',
    '-extfile',
    'server.ext',
  ]);
  return {
    dir,
    caFile: path.join(dir, 'ca.crt'),
    certFile: path.join(dir, 'server.crt'),
    keyFile: path.join(dir, 'server.key'),
    otherCaFile: path.join(dir, 'other-ca.crt'),
  };
}
