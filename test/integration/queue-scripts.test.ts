/**
 * Static checks of the Lua scripts, against a real Redis: each compiles
 * (SCRIPT LOAD), documents KEYS, ARGV and its return values in its header, and
 * uses exactly the number of keys its file name declares.
 */
import IORedis from 'ioredis';
import { readScripts } from '../../src/queue';
import { redisUrl } from '../helpers/isolation';

const scripts = readScripts();
let redis: IORedis;
beforeAll(() => {
  redis = new IORedis(redisUrl());
});
afterAll(() => redis.quit());

test('there are scripts to check', () => {
  expect(scripts.map((s) => s.name).sort()).toEqual([
    'ackClaim',
    'enqueue',
    'extend',
    'forgetTrade',
    'halt',
    'raiseEpoch',
    'rearm',
    'release',
    'resume',
    'skipHead',
  ]);
});

test.each(scripts.map((s) => [s.name, s] as const))(
  '%s compiles, documents itself and uses the keys its name declares',
  async (_name, s) => {
    await expect(redis.script('LOAD', s.lua)).resolves.toMatch(/^[0-9a-f]{40}$/);
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(s.lua)?.[1] ?? '';
    expect(header).toMatch(/KEYS\[1\]/);
    expect(header).toMatch(/ARGV\[1\]/);
    expect(header).toMatch(/Returns/);
    const body = s.lua.slice(s.lua.indexOf(']]'));
    const used = new Set([...body.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
    expect(Math.max(...used)).toBe(s.numberOfKeys);
    for (let k = 1; k <= s.numberOfKeys; k++) expect(header).toContain(`KEYS[${k}]`);
  },
);
