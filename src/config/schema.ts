/**
 * A small declarative schema for environment variables.
 *
 * Each variable is described once (kind, default, allowed values, description);
 * the same description parses the value, words the error and renders the README
 * table, so documentation and behaviour cannot drift apart.
 *
 * Empty strings count as unset: Kubernetes manifests and `.env` files often carry
 * `FOO=` to mean "not configured".
 */

export type VariableKind = 'string' | 'url' | 'int' | 'enum' | 'boolean' | 'duration-ms' | 'list';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

export interface VariableSpec<T> {
  readonly kind: VariableKind;
  readonly description: string;
  /** Absent means the variable is required. */
  readonly default?: T;
  /** Secret values are never printed; URL values are printed with their password masked. */
  readonly secret: boolean;
  /** Human-readable allowed values, used in errors ("Fix: set X to <allowed>") and in the README. */
  readonly allowed: string;
  parse(raw: string): ParseResult<T>;
  /** Renders a (default) value the way a user would write it in the environment. */
  format(value: T): string;
  /** Renders a raw value for an error message without leaking secrets. */
  show(raw: string): string;
}

export type ValueOf<S> = S extends VariableSpec<infer T> ? T : never;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a heterogeneous record of specs
export type Schema = Record<string, VariableSpec<any>>;

export type Values<S extends Schema> = { readonly [K in keyof S]: ValueOf<S[K]> };

export interface ConfigProblem {
  readonly variable: string;
  /** A full sentence naming the variable, the (masked) value and the fix. */
  readonly message: string;
}

/** Every invalid or missing variable of one configuration, reported together. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], context = 'configuration') {
    const n = problems.length;
    super(
      `Invalid ${context}: ${n} problem${n === 1 ? '' : 's'}\n` +
        problems.map((p) => `  - ${p.message}`).join('\n'),
    );
    this.problems = problems;
  }
}

/** A rule over several variables, run only when each of them parsed on its own. */
export interface CrossCheck<V> {
  /**
   * The variables involved; the first one is the one the problem is reported against.
   * A check whose variables are not all in the schema being parsed is skipped, so one
   * list of checks serves every process.
   */
  readonly variables: readonly string[];
  /** Returns undefined when satisfied, otherwise what is wrong and how to fix it. */
  check(values: V): string | undefined;
}

const HIDDEN = '(value hidden)';

/** Masks the password of a URL (`redis://:***@host`). Tolerates unparseable input. */
export function maskUrl(raw: string): string {
  try {
    // Only scheme://authority URLs: `u:pw@h` parses as scheme "u:" with path "pw@h".
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw new Error('no authority');
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Not a URL: whatever precedes the last "@" may be credentials; keep only a user name.
    const at = raw.lastIndexOf('@');
    if (at < 0) return raw;
    const slashes = raw.indexOf('//');
    const from = slashes >= 0 && slashes < at ? slashes + 2 : 0;
    const creds = raw.slice(from, at);
    const masked = creds.includes(':') ? `${creds.slice(0, creds.indexOf(':'))}:***` : '***';
    return raw.slice(0, from) + masked + raw.slice(at);
  }
}

interface CommonOptions<T> {
  description: string;
  default?: T;
  secret?: boolean;
}

function base<T>(
  kind: VariableKind,
  opts: CommonOptions<T>,
  allowed: string,
  parse: (raw: string) => ParseResult<T>,
  format: (value: T) => string = String,
  show?: (raw: string) => string,
): VariableSpec<T> {
  const secret = opts.secret ?? false;
  return Object.freeze({
    kind,
    description: opts.description,
    ...(opts.default === undefined ? {} : { default: opts.default }),
    secret,
    allowed,
    parse,
    format,
    show: show ?? ((raw: string) => (secret ? HIDDEN : JSON.stringify(raw))),
  });
}

const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
const fail = (message: string): ParseResult<never> => ({ ok: false, message });

export function string(
  opts: CommonOptions<string> & { pattern?: RegExp; patternText?: string },
): VariableSpec<string> {
  const allowed = opts.patternText ?? (opts.pattern ? `a string matching ${opts.pattern}` : 'any string');
  return base('string', opts, allowed, (raw) =>
    opts.pattern && !opts.pattern.test(raw) ? fail(`must be ${allowed}`) : ok(raw),
  );
}

export function url(opts: CommonOptions<string> & { protocols: readonly string[] }): VariableSpec<string> {
  const protocols = opts.protocols.map((p) => (p.endsWith(':') ? p : `${p}:`));
  const allowed = `a ${protocols.map((p) => `${p}//`).join(' or ')} URL`;
  return base(
    'url',
    opts,
    allowed,
    (raw) => {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        return fail(`is not a valid URL; it must be ${allowed}`);
      }
      if (!protocols.includes(u.protocol)) return fail(`has protocol ${u.protocol}; it must be ${allowed}`);
      if (!u.hostname) return fail(`has no host; it must be ${allowed} with a host`);
      return ok(raw);
    },
    // Defaults carry no password, but mask anyway in case one ever does.
    maskUrl,
    (raw) => (opts.secret ? HIDDEN : JSON.stringify(maskUrl(raw))),
  );
}

export function int(opts: CommonOptions<number> & { min?: number; max?: number }): VariableSpec<number> {
  const { min, max } = opts;
  const allowed =
    min !== undefined && max !== undefined
      ? `an integer from ${min} to ${max}`
      : min !== undefined
        ? `an integer >= ${min}`
        : max !== undefined
          ? `an integer <= ${max}`
          : 'an integer';
  return base('int', opts, allowed, (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) return fail(`is not an integer; it must be ${allowed}`);
    const n = Number(raw.trim());
    if (!Number.isSafeInteger(n)) return fail(`is too large; it must be ${allowed}`);
    if ((min !== undefined && n < min) || (max !== undefined && n > max))
      return fail(`is out of range; it must be ${allowed}`);
    return ok(n);
  });
}

export function oneOf<const V extends string>(
  values: readonly V[],
  opts: CommonOptions<NoInfer<V>>,
): VariableSpec<V> {
  const allowed = `one of ${values.join(', ')}`;
  return base('enum', opts, allowed, (raw) => {
    const v = raw.trim().toLowerCase();
    const found = values.find((x) => x.toLowerCase() === v);
    return found === undefined ? fail(`is not allowed; it must be ${allowed}`) : ok(found);
  });
}

const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

export function boolean(opts: CommonOptions<boolean>): VariableSpec<boolean> {
  const allowed = 'true or false (also 1/0, yes/no, on/off)';
  return base('boolean', opts, allowed, (raw) => {
    const v = raw.trim().toLowerCase();
    if (TRUE.includes(v)) return ok(true);
    if (FALSE.includes(v)) return ok(false);
    return fail(`is not a boolean; it must be ${allowed}`);
  });
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds: a bare integer (ms) or an integer with a unit, e.g. `250ms`, `5s`, `2m`, `1h`. */
export function durationMs(
  opts: CommonOptions<number> & { min?: number; max?: number },
): VariableSpec<number> {
  const { min, max } = opts;
  const range =
    min !== undefined && max !== undefined
      ? ` from ${min} to ${max} ms`
      : min !== undefined
        ? ` >= ${min} ms`
        : max !== undefined
          ? ` <= ${max} ms`
          : '';
  const allowed = `a duration${range} (milliseconds, or with a unit: 500ms, 5s, 2m, 1h)`;
  return base('duration-ms', opts, allowed, (raw) => {
    const m = /^(\d+)\s*(ms|s|m|h)?$/i.exec(raw.trim());
    if (!m) return fail(`is not a duration; it must be ${allowed}`);
    const n = Number(m[1]) * (UNIT_MS[(m[2] ?? 'ms').toLowerCase()] ?? 1);
    if (!Number.isSafeInteger(n)) return fail(`is too large; it must be ${allowed}`);
    if ((min !== undefined && n < min) || (max !== undefined && n > max))
      return fail(`is out of range; it must be ${allowed}`);
    return ok(n);
  });
}

/** A comma-separated list; items are trimmed and empty items dropped. */
export function list(
  opts: CommonOptions<readonly string[]> & { item?: RegExp; itemText?: string; minItems?: number },
): VariableSpec<readonly string[]> {
  const itemText = opts.itemText ?? (opts.item ? `items matching ${opts.item}` : 'items');
  const allowed = `a comma-separated list of ${itemText}`;
  return base(
    'list',
    opts,
    allowed,
    (raw) => {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      if (opts.minItems !== undefined && items.length < opts.minItems)
        return fail(`has ${items.length} item(s); it must be ${allowed} with at least ${opts.minItems}`);
      const item = opts.item;
      if (item) {
        const bad = items.findIndex((s) => !item.test(s));
        if (bad >= 0) return fail(`has an invalid item at position ${bad + 1}; it must be ${allowed}`);
      }
      return ok(Object.freeze(items));
    },
    (v) => v.join(','),
  );
}

/** The value a user would write for the default, or undefined when the variable is required. */
export function formatDefault(spec: VariableSpec<unknown>): string | undefined {
  return spec.default === undefined ? undefined : spec.format(spec.default);
}

/**
 * Parses every variable of `schema` from `env`, then the cross-field checks, and
 * throws ONE ConfigError listing every problem; otherwise returns the typed values.
 */
export function parseVariables<S extends Schema>(
  schema: S,
  env: Readonly<Record<string, string | undefined>>,
  crossChecks: readonly CrossCheck<Values<S>>[] = [],
  context?: string,
): Values<S> {
  const problems: ConfigProblem[] = [];
  const values: Record<string, unknown> = {};
  const failed = new Set<string>();

  for (const [name, spec] of Object.entries(schema)) {
    const raw = env[name];
    const dflt = formatDefault(spec);
    const unsetHint = dflt === undefined ? '' : `, or unset it to use the default ${dflt}`;
    if (raw === undefined || raw.trim() === '') {
      if (spec.default === undefined) {
        failed.add(name);
        problems.push({
          variable: name,
          message: `${name} is required but not set. Fix: set ${name} to ${spec.allowed} (${spec.description}).`,
        });
      } else {
        values[name] = spec.default;
      }
      continue;
    }
    const r = spec.parse(raw);
    if (r.ok) {
      values[name] = r.value;
    } else {
      failed.add(name);
      problems.push({
        variable: name,
        message: `${name}=${spec.show(raw)} ${r.message}. Fix: set ${name} to ${spec.allowed}${unsetHint}.`,
      });
    }
  }

  for (const cc of crossChecks) {
    if (cc.variables.some((v) => failed.has(v) || !(v in values))) continue;
    const message = cc.check(values as Values<S>);
    if (message !== undefined) problems.push({ variable: cc.variables[0] ?? '', message });
  }

  if (problems.length > 0) throw new ConfigError(problems, context);
  return Object.freeze(values) as Values<S>;
}
