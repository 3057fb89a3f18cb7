/**
 * Reading one variable of the environment: whole numbers, ports, booleans and durations, each
 * refused with a {@link ConfigError} that names the variable and says what was expected.
 */

/** A variable of the environment that holds an unusable value; start-up stops with its message. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`${variable}: ${detail}`);
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/** A whole number from `min` to `max`; `fallback` when unset or blank. */
export function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw))
    throw new ConfigError(name, `expected a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) {
    throw new ConfigError(name, `expected a number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A duration such as `30d`, `12h`, `90m`, `45s` or `500ms`, in ms; `0` and `off` are 0. */
export function readDuration(env: Env, name: string, fallback: number): number {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (raw === '0' || raw === 'off') return 0;
  const match = /^(\d{1,9})(ms|s|m|h|d)$/.exec(raw);
  const unit = match ? DURATION_UNITS_MS[match[2] as string] : undefined;
  if (!match || unit === undefined) {
    throw new ConfigError(
      name,
      `expected a duration such as 30d, 12h, 90m or 45s (or 0 / off), got ${JSON.stringify(env[name])}`,
    );
  }
  return Number(match[1]) * unit;
}

/** A port number, or `undefined` when unset or blank. */
export function readOptionalPort(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === '' ? undefined : readInt(env, name, 0, 0, 65535);
}

/** `true`/`false` (also 1/0, yes/no, on/off); `fallback` when unset or blank. */
export function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `expected true or false, got ${JSON.stringify(env[name])}`);
}
