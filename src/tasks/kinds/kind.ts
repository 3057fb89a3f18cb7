import type { z } from 'zod';
import type { Json } from '../task.js';

/** What a handler gets besides its input. */
export interface TaskContext {
  /** Aborted when the task is cancelled, times out, or the worker shuts down. */
  readonly signal: AbortSignal;
  /** Reports progress from 0 to 1; writes are throttled, the last value always lands. */
  reportProgress(progress: number): void;
  /** 1 for the first attempt. */
  readonly attempt: number;
  readonly taskId: string;
  readonly userId: string;
}

/** A failure a handler throws on purpose, with a stable code shown in `Task.error`. */
export class TaskFailure extends Error {
  override readonly name = 'TaskFailure';
  constructor(
    readonly code: string,
    message: string,
    /** `false` fails the task at once, whatever attempts remain. @default true */
    readonly retryable = true,
  ) {
    super(message);
  }
}

export interface Backoff {
  readonly type: 'fixed' | 'exponential';
  /** Delay before the second attempt; exponential doubles it for each attempt after. */
  readonly delayMs: number;
}

/** A kind of task: how its input is checked and how it runs. */
export interface TaskKind<Input = unknown> {
  readonly name: string;
  readonly description: string;
  /** Validates `StartTaskInput.input`; its JSON Schema is exposed by `taskKinds`. */
  readonly input: z.ZodType<Input>;
  /** Run by another system through the service-role mutations; no handler here. */
  readonly external?: boolean;
  /** Each attempt is aborted after this long. @default 60000 */
  readonly timeoutMs?: number;
  /** Attempts in all, the first included. @default 1 */
  readonly attempts?: number;
  /** @default { type: 'exponential', delayMs: 1000 } */
  readonly backoff?: Backoff;
  readonly handler?: (input: Input, context: TaskContext) => Promise<Json>;
}

/** Declares a kind with its input type inferred from the zod schema. */
export function defineKind<Schema extends z.ZodType>(
  kind: TaskKind<z.output<Schema>> & { input: Schema },
): TaskKind {
  return kind as unknown as TaskKind;
}

export function retryDelay(backoff: Backoff, attempt: number): number {
  return backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, attempt - 1);
}

export const KIND_DEFAULTS = {
  timeoutMs: 60_000,
  attempts: 1,
  backoff: { type: 'exponential', delayMs: 1_000 } satisfies Backoff,
} as const;
