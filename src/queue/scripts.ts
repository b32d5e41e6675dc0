import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';

/**
 * Loads the Lua scripts of lua/ onto an ioredis client as custom commands.
 *
 * A file is named `<name>-<numberOfKeys>.lua`. ioredis sends EVALSHA and falls
 * back to EVAL on NOSCRIPT, in single calls and in pipelines, so a Redis
 * restart (which forgets every loaded script) is survived without a reload
 * step of our own; test/integration/queue-scripts.test.ts proves it.
 */
export const SCRIPT_DIR = join(__dirname, 'lua');

export interface ScriptFile {
  name: string;
  numberOfKeys: number;
  lua: string;
}

export function readScripts(dir = SCRIPT_DIR): ScriptFile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .sort()
    .map((f) => {
      const m = /^([A-Za-z]+)-(\d+)\.lua$/.exec(f);
      if (!m) throw new Error(`Lua script file ${f} must be named <name>-<numberOfKeys>.lua`);
      return { name: m[1]!, numberOfKeys: Number(m[2]), lua: readFileSync(join(dir, f), 'utf8') };
    });
}

let cache: ScriptFile[] | undefined;

/** The commands the scripts define, typed. Results are Redis replies as ioredis returns them. */
export interface ScriptCommands {
  tfEnqueue(...args: (string | number)[]): Promise<number[]>;
  /** [wait, one reply per ack, claims] (see lua/ackClaim-9.lua). */
  tfAckClaim(...args: (string | number)[]): Promise<[number, (number | string)[][], string[][]]>;
  tfRelease(...args: (string | number)[]): Promise<number>;
  tfExtend(...args: (string | number)[]): Promise<number[]>;
  tfHalt(...args: (string | number)[]): Promise<number>;
  tfResume(...args: (string | number)[]): Promise<number>;
  tfSkipHead(...args: (string | number)[]): Promise<number | string>;
  tfRearm(...args: (string | number)[]): Promise<string[]>;
  tfForgetTrade(...args: (string | number)[]): Promise<number>;
  tfRaiseEpoch(...args: (string | number)[]): Promise<number>;
}

export type ScriptedRedis = Redis & ScriptCommands;

/** Defines the scripts on `redis` (idempotent) and returns it, typed. */
export function withScripts(redis: Redis): ScriptedRedis {
  const r = redis as ScriptedRedis;
  if ((r as unknown as { tfEnqueue?: unknown }).tfEnqueue) return r;
  cache ??= readScripts();
  for (const s of cache) {
    const cmd = 'tf' + s.name[0]!.toUpperCase() + s.name.slice(1);
    redis.defineCommand(cmd, { numberOfKeys: s.numberOfKeys, lua: s.lua });
  }
  return r;
}
