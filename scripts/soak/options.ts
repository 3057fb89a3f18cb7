/**
 * The soak's command line, its seeded randomness and its log: what every other part of the soak
 * reads. `npm run soak -- [--quick] [--mode redis|embedded|both] [--duration S] [--users N]
 * [--rate R] [--seed N] [--out DIR]`.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './procs.js';

/** The deployments the soak can run: several processes around Redis, or one embedded process. */
export const DEPLOYMENTS = ['redis', 'embedded'] as const;
export type Deployment = (typeof DEPLOYMENTS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    mode: { type: 'string', default: 'both' },
    duration: { type: 'string' },
    users: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  },
});

function intFlag(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

function modeFlag(raw: string | undefined): readonly Deployment[] {
  if (raw === undefined || raw === 'both') return DEPLOYMENTS;
  if ((DEPLOYMENTS as readonly string[]).includes(raw)) return [raw as Deployment];
  console.error(`--mode: expected redis, embedded or both, got ${JSON.stringify(raw)}`);
  process.exit(2);
}

const quick = args.quick === true;
export const options = {
  quick,
  /** The deployments to soak, one after the other. */
  modes: modeFlag(args.mode),
  /** Seconds of traffic under faults (start-up and the final drain come on top). */
  durationS: intFlag('duration', args.duration, quick ? 40 : 300, 10, 86_400),
  users: intFlag('users', args.users, quick ? 60 : 500, 2, 20_000),
  /** Tasks started per second. */
  rate: intFlag('rate', args.rate, quick ? 20 : 80, 1, 5_000),
  seed: intFlag('seed', args.seed, Date.now() % 1_000_000, 0, 2 ** 31 - 1),
  out: path.resolve(REPO_ROOT, args.out ?? 'soak-results'),
};
export type SoakOptions = typeof options;

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed with --seed. */
function rngFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
export const rng = rngFrom(options.seed);
export const between = (min: number, max: number) => min + Math.floor(rng() * (max - min + 1));
export function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}
export function sample<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0) {
    chosen.push(...pool.splice(Math.floor(rng() * pool.length), 1));
  }
  return chosen;
}

export const t0 = Date.now();
export const log = (message: string) =>
  console.log(`[soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);
