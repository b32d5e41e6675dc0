/**
 * The subset of KEDA's `scalingModifiers.formula` language that tradefleet
 * uses, parsed and evaluated the way KEDA does it.
 *
 * KEDA compiles the formula with expr-lang (github.com/expr-lang/expr) and
 * runs it over a map from trigger name to that trigger's metric value, as a
 * float64 (pkg/scaling/modifiers). Every trigger value being a float, every
 * arithmetic result is a float too, so plain IEEE doubles model it exactly.
 *
 * Supported: decimal numbers, trigger names, unary minus, `+ - * /`,
 * parentheses, and the calls `min(a, b, ...)`, `max(a, b, ...)`, `ceil(x)`.
 * Anything else (other functions, `??`, comparisons, `%`, `**`, strings) is
 * rejected at compile time with the position and the fix, so that a formula the
 * local autoscaler accepts is one we have also checked the meaning of.
 */

export type FormulaNode =
  | { readonly kind: 'number'; readonly value: number }
  | { readonly kind: 'name'; readonly name: string; readonly at: number }
  | { readonly kind: 'neg'; readonly operand: FormulaNode }
  | {
      readonly kind: 'binary';
      readonly op: '+' | '-' | '*' | '/';
      readonly left: FormulaNode;
      readonly right: FormulaNode;
    }
  | {
      readonly kind: 'call';
      readonly fn: FormulaFunction;
      readonly args: readonly FormulaNode[];
      readonly at: number;
    };

export type FormulaFunction = 'min' | 'max' | 'ceil';

const FUNCTIONS: Readonly<Record<FormulaFunction, { min: number; max: number }>> = {
  min: { min: 1, max: Infinity },
  max: { min: 1, max: Infinity },
  ceil: { min: 1, max: 1 },
};

export class FormulaError extends Error {
  override readonly name = 'FormulaError';
  constructor(
    readonly formula: string,
    readonly position: number,
    detail: string,
  ) {
    super(`scalingModifiers.formula ${JSON.stringify(formula)}: ${detail} (at character ${position + 1})`);
  }
}

/** A parsed formula and the trigger names it reads. */
export interface CompiledFormula {
  readonly source: string;
  readonly ast: FormulaNode;
  /** Every trigger name the formula reads, sorted, without duplicates. */
  readonly names: readonly string[];
}

type Token =
  | { readonly t: 'num'; readonly v: number; readonly at: number }
  | { readonly t: 'id'; readonly v: string; readonly at: number }
  | { readonly t: 'op'; readonly v: string; readonly at: number }
  | { readonly t: 'end'; readonly at: number };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const num = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
    if (num) {
      out.push({ t: 'num', v: Number(num[0]), at: i });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
    if (id) {
      out.push({ t: 'id', v: id[0], at: i });
      i += id[0].length;
      continue;
    }
    if ('+-*/(),'.includes(c)) {
      // `**` (power) and `//` are expr operators we do not support; say so rather than misparse.
      if ((c === '*' || c === '/') && src[i + 1] === c) {
        throw new FormulaError(src, i, `operator "${c}${c}" is not supported; use only + - * / min max ceil`);
      }
      out.push({ t: 'op', v: c, at: i });
      i++;
      continue;
    }
    throw new FormulaError(
      src,
      i,
      `unexpected character ${JSON.stringify(c)}; use only numbers, trigger names, + - * / ( ) , min max ceil`,
    );
  }
  out.push({ t: 'end', at: src.length });
  return out;
}

/**
 * Parse `source` and check that every name it reads is one of `triggerNames`
 * (KEDA fails the ScaledObject the same way when the formula names a trigger
 * that does not exist).
 *
 * @throws FormulaError naming the position, the unknown name and the known ones.
 */
export function compileFormula(source: string, triggerNames: readonly string[]): CompiledFormula {
  const tokens = tokenize(source);
  let p = 0;
  const peek = (): Token => tokens[p]!;
  const next = (): Token => tokens[p++]!;
  const isOp = (tok: Token, v: string): boolean => tok.t === 'op' && tok.v === v;
  const expect = (v: string): void => {
    const tok = next();
    if (!isOp(tok, v)) throw new FormulaError(source, tok.at, `expected "${v}"`);
  };
  const known = new Set(triggerNames);
  const names = new Set<string>();

  const expression = (): FormulaNode => {
    let left = term();
    for (;;) {
      const tok = peek();
      if (isOp(tok, '+') || isOp(tok, '-')) {
        next();
        left = { kind: 'binary', op: (tok as { v: '+' | '-' }).v, left, right: term() };
      } else return left;
    }
  };
  const term = (): FormulaNode => {
    let left = unary();
    for (;;) {
      const tok = peek();
      if (isOp(tok, '*') || isOp(tok, '/')) {
        next();
        left = { kind: 'binary', op: (tok as { v: '*' | '/' }).v, left, right: unary() };
      } else return left;
    }
  };
  const unary = (): FormulaNode => {
    if (isOp(peek(), '-')) {
      next();
      return { kind: 'neg', operand: unary() };
    }
    if (isOp(peek(), '+')) {
      next();
      return unary();
    }
    return primary();
  };
  const primary = (): FormulaNode => {
    const tok = next();
    if (tok.t === 'num') return { kind: 'number', value: tok.v };
    if (isOp(tok, '(')) {
      const inner = expression();
      expect(')');
      return inner;
    }
    if (tok.t === 'id') {
      if (isOp(peek(), '(')) {
        next();
        if (!(tok.v in FUNCTIONS)) {
          throw new FormulaError(
            source,
            tok.at,
            `unknown function "${tok.v}"; the supported ones are min, max and ceil`,
          );
        }
        const fn = tok.v as FormulaFunction;
        const args: FormulaNode[] = [];
        if (!isOp(peek(), ')')) {
          args.push(expression());
          while (isOp(peek(), ',')) {
            next();
            args.push(expression());
          }
        }
        expect(')');
        const arity = FUNCTIONS[fn];
        if (args.length < arity.min || args.length > arity.max) {
          const want = arity.max === arity.min ? `${arity.min}` : `at least ${arity.min}`;
          throw new FormulaError(source, tok.at, `${fn}() takes ${want} argument(s), got ${args.length}`);
        }
        return { kind: 'call', fn, args, at: tok.at };
      }
      if (!known.has(tok.v)) {
        const list = triggerNames.length ? triggerNames.map((n) => `"${n}"`).join(', ') : '(none)';
        throw new FormulaError(
          source,
          tok.at,
          `unknown name "${tok.v}": a formula may only read trigger names, and this ScaledObject's triggers are ${list}. ` +
            `Fix: name the trigger "${tok.v}" (spec.triggers[].name) or use one of those names`,
        );
      }
      names.add(tok.v);
      return { kind: 'name', name: tok.v, at: tok.at };
    }
    throw new FormulaError(
      source,
      tok.at,
      tok.t === 'end' ? 'unexpected end of formula' : `unexpected "${tok.v}"`,
    );
  };

  if (peek().t === 'end') throw new FormulaError(source, 0, 'the formula is empty');
  const ast = expression();
  const rest = peek();
  if (rest.t !== 'end')
    throw new FormulaError(source, rest.at, `unexpected "${rest.v}" after a complete expression`);
  return { source, ast, names: [...names].sort() };
}

/**
 * Evaluate over trigger values. Division by zero gives ±Infinity or NaN as in
 * Go's float64 arithmetic; callers treat a non-finite result as a formula error
 * (KEDA would turn it into a nonsensical quantity).
 */
export function evaluateFormula(formula: CompiledFormula, values: Readonly<Record<string, number>>): number {
  const run = (n: FormulaNode): number => {
    switch (n.kind) {
      case 'number':
        return n.value;
      case 'name': {
        const v = values[n.name];
        if (v === undefined) throw new FormulaError(formula.source, n.at, `no value for trigger "${n.name}"`);
        return v;
      }
      case 'neg':
        return -run(n.operand);
      case 'binary': {
        const a = run(n.left);
        const b = run(n.right);
        switch (n.op) {
          case '+':
            return a + b;
          case '-':
            return a - b;
          case '*':
            return a * b;
          case '/':
            return a / b;
        }
        break;
      }
      case 'call': {
        const args = n.args.map(run);
        if (n.fn === 'min') return Math.min(...args);
        if (n.fn === 'max') return Math.max(...args);
        return Math.ceil(args[0]!);
      }
    }
    throw new Error('unreachable');
  };
  return run(formula.ast);
}
