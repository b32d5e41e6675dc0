import { compileFormula, evaluateFormula, FormulaError } from '../../src/scaling/formula';

const NAMES = ['pending', 'backlog'];
const values = { pending: 400, backlog: 100_000 };

describe('scalingModifiers formula: the expr-lang subset tradefleet uses', () => {
  it.each([
    // KEDA passes each trigger's metric to the formula under the trigger's name, as a float.
    { formula: 'pending', expected: 400 },
    // expr-lang's min/max take any number of arguments and return the smallest/largest.
    { formula: 'min(pending * 2000, backlog * 16)', expected: 800_000 },
    { formula: 'max(pending, backlog, 7)', expected: 100_000 },
    // Division is float division (all operands are float64): 400 / 16 = 25, 100000 / 3 is not truncated.
    { formula: 'min(pending / 16, backlog / 3)', expected: 25 },
    { formula: 'backlog / 3', expected: 100_000 / 3 },
    // ceil rounds up to the next integer.
    { formula: 'ceil(pending / 3)', expected: 134 },
    // Usual precedence: * and / bind tighter than + and -, left to right; parentheses override.
    { formula: '1 + 2 * 3 - 4 / 2', expected: 5 },
    { formula: '(1 + 2) * 3', expected: 9 },
    { formula: '10 - 4 - 3', expected: 3 },
    // Unary minus and decimals.
    { formula: '-pending + 0.5 * 2', expected: -399 },
    { formula: '.5e1', expected: 5 },
  ])('$formula = $expected', ({ formula, expected }) => {
    expect(evaluateFormula(compileFormula(formula, NAMES), values)).toBeCloseTo(expected, 9);
  });

  it('lists the trigger names the formula reads, sorted and unique', () => {
    expect(compileFormula('min(pending, backlog) + pending', NAMES).names).toEqual(['backlog', 'pending']);
  });

  it.each([
    // KEDA rejects a formula that reads a name no trigger carries; the message names it and the known triggers.
    { formula: 'min(pending, queue)', message: /unknown name "queue".*"pending", "backlog".*Fix/ },
    {
      formula: 'floor(pending)',
      message: /unknown function "floor"; the supported ones are min, max and ceil/,
    },
    { formula: 'pending ?? 0', message: /unexpected character "\?"/ },
    { formula: 'pending ** 2', message: /operator "\*\*" is not supported/ },
    { formula: 'pending > 1', message: /unexpected character ">"/ },
    { formula: 'ceil(pending, backlog)', message: /ceil\(\) takes 1 argument\(s\), got 2/ },
    { formula: 'min()', message: /min\(\) takes at least 1 argument\(s\), got 0/ },
    { formula: 'min(pending', message: /expected "\)"/ },
    { formula: 'pending backlog', message: /unexpected "backlog" after a complete expression/ },
    { formula: '', message: /the formula is empty/ },
    { formula: 'pending *', message: /unexpected end of formula/ },
  ])('rejects $formula', ({ formula, message }) => {
    expect(() => compileFormula(formula, NAMES)).toThrow(FormulaError);
    expect(() => compileFormula(formula, NAMES)).toThrow(message);
  });

  it('reports the position of the problem (1-based)', () => {
    expect(() => compileFormula('min(pending, queue)', NAMES)).toThrow(/at character 14/);
  });
});
