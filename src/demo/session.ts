import { computed, type Ref, reactive, ref, shallowRef } from 'vue';
import {
  type ConnectionState,
  createLocalStorageCursorStore,
  createTaskClient,
  isFinal,
  type Task,
  type TaskClient,
  type TaskKind,
} from '../client/index.js';

/** One completion as the SDK delivered it. */
export interface CompletionEntry {
  readonly cursor: string;
  readonly task: Task;
  readonly replayed: boolean;
  readonly receivedAt: Date;
}

export interface DemoSessionOptions {
  readonly userId: string;
  /** Called by the SDK for every token it needs: at connect, and after the server refused one. */
  readonly getToken: () => Promise<string>;
  /** @default `/graphql` on the page's origin */
  readonly url?: string;
  /** How often a task that is not final is read again for its progress. @default 500 */
  readonly progressPollMs?: number;
}

/** What the page shows for one user, kept current by the SDK. */
export interface DemoSession {
  readonly userId: string;
  readonly connection: Readonly<Ref<ConnectionState>>;
  readonly kinds: Readonly<Ref<readonly TaskKind[]>>;
  /** The user's tasks, newest first. */
  readonly tasks: Readonly<Ref<readonly Task[]>>;
  /** Completions in the order they arrived, oldest first. */
  readonly completions: Readonly<Ref<readonly CompletionEntry[]>>;
  /** Why the kinds or the task list could not be loaded, if they could not. */
  readonly loadError: Readonly<Ref<string | null>>;
  startTask(kind: string, input: unknown): Promise<Task>;
  cancelTask(id: string): Promise<Task>;
  dispose(): Promise<void>;
}

/** A message fit to show for anything a call threw. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Connects to the service as `userId` and keeps the page's state current: completions from
 * `onTaskCompleted` (resumed from the cursor in localStorage across reconnects, restarts and
 * reloads), progress of unfinished tasks read with `task(id)`, and the task list reloaded
 * whenever the connection comes back.
 */
export function createDemoSession({
  userId,
  getToken,
  url = new URL('/graphql', location.href).href,
  progressPollMs = 500,
}: DemoSessionOptions): DemoSession {
  const client: TaskClient = createTaskClient({
    url,
    getToken,
    userId,
    cursorStore: createLocalStorageCursorStore(),
  });
  const connection = ref<ConnectionState>(client.connectionState.get());
  const kinds = shallowRef<readonly TaskKind[]>([]);
  const byId = reactive(new Map<string, Task>());
  const completions = shallowRef<readonly CompletionEntry[]>([]);
  const loadError = ref<string | null>(null);
  const tasks = computed(() =>
    [...byId.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id)),
  );

  /** Keeps the newest state of a task: a final state is never replaced by an older, unfinished one. */
  function merge(task: Task): void {
    const known = byId.get(task.id);
    if (known && isFinal(known.status) && !isFinal(task.status)) return;
    byId.set(task.id, task);
  }

  async function load(): Promise<void> {
    try {
      const [kindList, page] = await Promise.all([client.taskKinds(), client.tasks({ first: 50 })]);
      kinds.value = kindList;
      for (const task of page.nodes) merge(task);
      loadError.value = null;
    } catch (error) {
      loadError.value = describeError(error);
    }
  }

  const stopCompletions = client.onTaskCompleted((event) => {
    merge(event.task);
    completions.value = [
      ...completions.value,
      { cursor: event.cursor, task: event.task, replayed: event.replayed, receivedAt: new Date() },
    ];
  });

  let lostConnection = false;
  const stopConnection = client.connectionState.subscribe((state) => {
    const previous = connection.value;
    connection.value = state;
    if (previous === 'connected' && state !== 'connected') lostConnection = true;
    // Back after an outage: tasks may have been re-queued or started elsewhere meanwhile.
    if (state === 'connected' && (lostConnection || loadError.value !== null)) {
      lostConnection = false;
      void load();
    }
  });

  const polling = new Set<string>();
  const pollTimer = setInterval(() => {
    // While the connection is down the reads would fail too; the list is reloaded once it is back.
    if (connection.value !== 'connected') return;
    for (const task of byId.values()) {
      if (isFinal(task.status) || polling.has(task.id)) continue;
      polling.add(task.id);
      client
        .task(task.id)
        .then((current) => current && merge(current))
        // Lost meanwhile: the connection indicator says so, and the next round tries again.
        .catch(() => undefined)
        .finally(() => polling.delete(task.id));
    }
  }, progressPollMs);

  void load();

  return {
    userId,
    connection,
    kinds,
    tasks,
    completions,
    loadError,
    async startTask(kind, input) {
      const task = await client.startTask({ kind, input });
      merge(task);
      return task;
    },
    async cancelTask(id) {
      const task = await client.cancelTask(id);
      merge(task);
      return task;
    },
    async dispose() {
      clearInterval(pollTimer);
      stopCompletions();
      stopConnection();
      await client.dispose();
    },
  };
}
