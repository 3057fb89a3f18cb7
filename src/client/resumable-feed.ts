import type { FieldNode, OperationDefinitionNode } from 'graphql';
import { Kind } from 'graphql';

/** Cursors and task ids remembered to drop duplicates; far more than a subscription ever replays twice. */
const REMEMBERED = 10_000;
/** Finish times of tasks from different workers are compared with this much allowance for clock skew. */
const CLOCK_SKEW_MS = 60_000;

/** An insertion-ordered set that forgets its oldest entries beyond `limit`. */
class RecentSet {
  readonly #items = new Set<string>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  has(item: string): boolean {
    return this.#items.has(item);
  }

  add(item: string): void {
    this.#items.add(item);
    if (this.#items.size > this.#limit) {
      const oldest = this.#items.values().next();
      if (!oldest.done) this.#items.delete(oldest.value);
    }
  }
}

/** Where a `taskCompleted` field sits in a subscription document, and what it is asked for. */
export interface FeedField {
  /** The key of the field in `data` (its alias, if it has one). */
  readonly responseKey: string;
  /** The variable that carries `after`; null when the document gives `after` no variable. */
  readonly afterVariable: string | null;
  /** The followed user: from its variable or a literal; null when neither names one. */
  readonly userId: string | null;
}

/**
 * The `taskCompleted` field of a subscription operation, or null for any other operation. Only a
 * subscription with `taskCompleted` as one of its root fields is resumed.
 */
export function findFeedField(
  definitions: readonly { readonly kind: string }[],
  variables: Readonly<Record<string, unknown>> | undefined,
): FeedField | null {
  const operation = definitions.find(
    (definition): definition is OperationDefinitionNode =>
      definition.kind === Kind.OPERATION_DEFINITION &&
      (definition as OperationDefinitionNode).operation === 'subscription',
  );
  const field = operation?.selectionSet.selections.find(
    (selection): selection is FieldNode =>
      selection.kind === Kind.FIELD && selection.name.value === 'taskCompleted',
  );
  if (!field) return null;
  const argument = (name: string) => field.arguments?.find((arg) => arg.name.value === name)?.value;
  const after = argument('after');
  const user = argument('userId');
  let userId: string | null = null;
  if (user?.kind === Kind.VARIABLE) {
    const value = variables?.[user.name.value];
    userId = typeof value === 'string' ? value : null;
  } else if (user?.kind === Kind.STRING) userId = user.value;
  return {
    responseKey: field.alias?.value ?? field.name.value,
    afterVariable: after?.kind === Kind.VARIABLE ? after.name.value : null,
    userId,
  };
}

/** The fields of a delivered event that resuming and dropping duplicates read. */
export interface FeedEvent {
  readonly cursor?: unknown;
  readonly task?: { readonly id?: unknown; readonly finishedAt?: unknown } | null;
}

/**
 * The resume state of one `taskCompleted` subscription (one urql operation key), kept across its
 * re-subscriptions: the cursor it resumes from, and the cursors and tasks it already handed on.
 */
export class ResumableFeed {
  readonly field: FeedField;
  /** Where the next (re)subscription resumes: null from now on; undefined until first decided. */
  cursor: string | null | undefined = undefined;
  /** Bumped on every subscribe and teardown: work begun for an earlier one stops. */
  generation = 0;
  /** Whether the operation is subscribed (not torn down). */
  active = false;
  /** Errors in a row since the last delivered event: how long the next re-subscription waits. */
  errorRetries = 0;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #deliveredCursors = new RecentSet(REMEMBERED);
  readonly #deliveredTasks = new RecentSet(REMEMBERED);
  /** Newest `finishedAt` handed on, in ms: a reconciliation skips tasks that finished well before it. */
  #lastFinishedAt: number | null = null;

  constructor(field: FeedField) {
    this.field = field;
  }

  /**
   * Takes note of a delivered event; false when it is a duplicate that must not be handed on
   * (a cursor already seen, or a task that already reached its final status in this feed).
   * Moves the resume cursor forward either way.
   */
  accept(event: FeedEvent): boolean {
    const cursor = typeof event.cursor === 'string' ? event.cursor : null;
    if (cursor !== null) {
      if (this.#deliveredCursors.has(cursor)) return false;
      this.#deliveredCursors.add(cursor);
      this.cursor = cursor;
    }
    this.errorRetries = 0;
    return this.acceptTask(event.task);
  }

  /** False when the task was already handed on: a task reaches a final status once. */
  acceptTask(task: FeedEvent['task']): boolean {
    const id = typeof task?.id === 'string' ? task.id : null;
    if (id === null) return true;
    if (this.#deliveredTasks.has(id)) return false;
    this.#deliveredTasks.add(id);
    const finishedAt = typeof task?.finishedAt === 'string' ? Date.parse(task.finishedAt) : Number.NaN;
    if (!Number.isNaN(finishedAt)) this.#lastFinishedAt = Math.max(this.#lastFinishedAt ?? 0, finishedAt);
    return true;
  }

  /**
   * Of the newest finished tasks (newest first, as `tasks` lists them), those this feed has not
   * handed on and that finished no earlier than the last one it did (less the clock-skew allowance),
   * oldest first. A feed that has handed on nothing cannot tell, and returns them all.
   */
  missed<T extends { readonly id: string; readonly finishedAt: string | null }>(
    newestFirst: readonly T[],
  ): T[] {
    const since = this.#lastFinishedAt === null ? null : this.#lastFinishedAt - CLOCK_SKEW_MS;
    return [...newestFirst]
      .reverse()
      .filter((task) => !this.#deliveredTasks.has(task.id))
      .filter((task) => since === null || task.finishedAt === null || Date.parse(task.finishedAt) >= since)
      .sort((a, b) => (a.finishedAt ?? '').localeCompare(b.finishedAt ?? ''));
  }

  /**
   * The operation's variables with `after` read from {@link cursor} whenever they are serialised:
   * graphql-ws sends a subscription's payload again after a reconnect, and then it carries the
   * newest cursor instead of the one it was first sent with.
   */
  liveVariables(variables: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> {
    const live: Record<string, unknown> = { ...variables };
    const name = this.field.afterVariable;
    if (name === null) return live;
    Object.defineProperty(live, name, { enumerable: true, get: () => this.cursor ?? null });
    return live;
  }
}
