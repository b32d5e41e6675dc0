/**
 * The files some variables name (`*_FILE`, `*_CA_FILE`): Kubernetes mounts a
 * Secret as files, and a file keeps the value out of the process environment,
 * which `kubectl describe`, crash reporters and child processes can see.
 *
 * Each file is read once, at start-up, with the rest of the configuration, and
 * every problem (missing, unreadable, empty, not PEM, a malformed token) is
 * reported with the others: the variable, the path and the fix, never the
 * content.
 */
import fs from 'node:fs';

import type { ConfigProblem } from './schema';

/** What a bearer token may contain: RFC 6750's token68 (what the Authorization header can carry). */
export const TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const TOKEN_MIN_LENGTH = 16;
export const TOKEN_MAX_LENGTH = 512;
const TOKEN_RULE =
  `${TOKEN_MIN_LENGTH} to ${TOKEN_MAX_LENGTH} characters from A-Z a-z 0-9 - . _ ~ + / ` +
  '(= only as padding at the end)';
const TOKEN_FIX = 'generate one with `openssl rand -base64 32`';

/** Which variable, and where a file's value came from, for messages. */
function where(variable: string, path: string): string {
  return `${variable}=${JSON.stringify(path)}`;
}

/** Reads a file as UTF-8, or reports why it cannot be read. */
function readText(
  variable: string,
  path: string,
  problems: ConfigProblem[],
  what: string,
): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const reason =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'is not readable by this process'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${code})`;
    problems.push({
      variable,
      message: `${where(variable, path)}: the file ${reason}. Fix: point ${variable} at ${what} (in Kubernetes, the path where the Secret is mounted), or unset it.`,
    });
    return undefined;
  }
}

/**
 * A password from a file: the whole content less one trailing newline (what
 * `echo pw > file` and most Secret tooling leave). Undefined when the variable
 * is unset; problems appended when the file is unusable.
 */
export function readSecretFile(
  variable: string,
  path: string,
  problems: ConfigProblem[],
): string | undefined {
  if (path === '') return undefined;
  const text = readText(variable, path, problems, 'a file holding the password');
  if (text === undefined) return undefined;
  const value = text.replace(/\r?\n$/, '');
  if (value === '') {
    problems.push({
      variable,
      message: `${where(variable, path)}: the file is empty. Fix: write the password into it, or unset ${variable}.`,
    });
    return undefined;
  }
  if (/[\r\n]/.test(value)) {
    problems.push({
      variable,
      message: `${where(variable, path)}: the file has more than one line (content hidden). Fix: keep only the password in it.`,
    });
    return undefined;
  }
  return value;
}

/** A PEM bundle of CA certificates; its content is checked to be PEM, not parsed. */
export function readCaFile(variable: string, path: string, problems: ConfigProblem[]): string | undefined {
  if (path === '') return undefined;
  const text = readText(variable, path, problems, 'a PEM file of CA certificates');
  if (text === undefined) return undefined;
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    problems.push({
      variable,
      message: `${where(variable, path)}: the file holds no PEM certificate ("-----BEGIN CERTIFICATE-----"). Fix: point it at the CA certificate(s) in PEM form (ca.crt).`,
    });
    return undefined;
  }
  return text;
}

/** One token's problem, or undefined when it is acceptable. Never includes the token. */
function tokenProblem(token: string): string | undefined {
  if (token.length < TOKEN_MIN_LENGTH)
    return `is ${token.length} characters long: too short to resist guessing`;
  if (token.length > TOKEN_MAX_LENGTH) return `is ${token.length} characters long: too long`;
  if (!TOKEN_PATTERN.test(token)) return 'has a character a bearer token cannot carry';
  return undefined;
}

/**
 * The bearer tokens of API_TOKENS (already split) and API_TOKENS_FILE (one a
 * line, `#` comments and blank lines ignored), together and without
 * duplicates. A file that names no token is a problem rather than "auth off":
 * whoever mounted a tokens file meant authentication to be on.
 */
export function collectTokens(
  fromEnv: readonly string[],
  filePath: string,
  problems: ConfigProblem[],
): string[] {
  const tokens: string[] = [];
  fromEnv.forEach((token, i) => {
    const problem = tokenProblem(token);
    if (problem === undefined) tokens.push(token);
    else
      problems.push({
        variable: 'API_TOKENS',
        message: `API_TOKENS item ${i + 1} (value hidden) ${problem}. Fix: use tokens of ${TOKEN_RULE}; ${TOKEN_FIX}.`,
      });
  });
  if (filePath !== '') {
    const text = readText('API_TOKENS_FILE', filePath, problems, 'a file of tokens, one a line');
    if (text !== undefined) {
      let found = 0;
      text.split(/\r?\n/).forEach((raw, i) => {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) return;
        found += 1;
        const problem = tokenProblem(line);
        if (problem === undefined) tokens.push(line);
        else
          problems.push({
            variable: 'API_TOKENS_FILE',
            message: `${where('API_TOKENS_FILE', filePath)} line ${i + 1} (value hidden) ${problem}. Fix: use tokens of ${TOKEN_RULE}, one a line; ${TOKEN_FIX}.`,
          });
      });
      if (found === 0) {
        problems.push({
          variable: 'API_TOKENS_FILE',
          message: `${where('API_TOKENS_FILE', filePath)}: the file holds no token (only blank or # lines). Fix: add at least one token, one a line, or unset API_TOKENS_FILE to turn authentication off.`,
        });
      }
    }
  }
  return [...new Set(tokens)];
}
