import { pino } from 'pino';
import type { LogLevel } from './config.js';

/** Structured logger: one JSON line per record on stderr. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Paths pino replaces with `[redacted]` wherever a caller logs them, so a token never reaches a
 * log line: Authorization headers (HTTP and the upgrade request), graphql-ws `connectionParams`
 * (which carry the token) and GraphiQL's per-operation `extensions.headers`.
 */
export const REDACTED_PATHS: readonly string[] = [
  'authorization',
  'token',
  'connectionParams',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.token',
  '*.connectionParams',
  '*.headers.authorization',
  '*.headers.cookie',
  'extensions.headers',
  '*.extensions.headers',
];

/**
 * A pino logger behind the {@link Logger} interface: `{"level":"info","time":"…","pid":…,…,"msg":"…"}`
 * lines, errors under `err` with their stack, tokens redacted. `write` replaces stderr (tests);
 * `fields` adds to each line what it returns then (tracing: `trace_id`, `span_id`).
 */
export function createLogger(
  level: LogLevel,
  write?: (line: string) => void,
  fields?: () => Record<string, unknown>,
): Logger {
  const destination = write ? { write } : pino.destination({ fd: 2, sync: true });
  const log = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
      redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
      ...(fields ? { mixin: fields } : {}),
    },
    destination,
  );
  const at =
    (method: 'debug' | 'info' | 'warn' | 'error') => (msg: string, fields?: Record<string, unknown>) => {
      if (fields) log[method](fields, msg);
      else log[method](msg);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
