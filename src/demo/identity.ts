import { type Ref, ref, shallowRef } from 'vue';
import { createLocalStorageCursorStore, type TaskClientOptions } from '../client/index.js';
import { describeError } from './task-format.js';
import { DevTokensUnavailableError, fetchDevToken, tokenSubject, USER_ID_PATTERN } from './tokens.js';

/** Whether the server mints dev tokens; `unknown` until the first user is picked. */
export type DevTokenAvailability = 'unknown' | 'available' | 'unavailable';

/** The user the page acts as, and the options of the task client that acts for it. */
export interface DemoUser {
  /** New for every pick (even of the same user again): the key of the component that provides the client. */
  readonly key: number;
  readonly userId: string;
  readonly clientOptions: TaskClientOptions;
}

export interface Identity {
  readonly user: Readonly<Ref<DemoUser | null>>;
  readonly devTokens: Readonly<Ref<DevTokenAvailability>>;
  /** Why the last user or token could not be used. */
  readonly error: Readonly<Ref<string | null>>;
  /** Acts as `userId` with tokens from `POST /dev/token`. */
  useUser(userId: string): Promise<void>;
  /** Acts as the subject of a pasted token (when the server mints no dev tokens). */
  useToken(token: string): Promise<void>;
}

const LAST_USER_KEY = 'task-status-demo:user';
export const DEFAULT_USER = 'demo-user';

/** The user picked last time on this browser, or the service's printed demo user. */
export function rememberedUser(): string {
  const stored = localStorage.getItem(LAST_USER_KEY);
  return stored !== null && USER_ID_PATTERN.test(stored) ? stored : DEFAULT_USER;
}

/** The options of the SDK client for one user: the page's `/graphql`, completions resumed across reloads. */
function clientOptions(getToken: () => Promise<string>): TaskClientOptions {
  return { url: '/graphql', getToken, cursorStore: createLocalStorageCursorStore() };
}

/**
 * Who the page acts as: one {@link DemoUser} at a time. The page provides a task client per user
 * (`provideTaskClient` in a component keyed by {@link DemoUser.key}), so a new pick disposes the
 * previous client and creates the next.
 */
export function useIdentity(): Identity {
  const user = shallowRef<DemoUser | null>(null);
  const devTokens = ref<DevTokenAvailability>('unknown');
  const error = ref<string | null>(null);
  /** Ignores a slower, earlier pick that finishes after a later one. */
  let generation = 0;

  async function useUser(userId: string): Promise<void> {
    const pick = ++generation;
    error.value = null;
    if (!USER_ID_PATTERN.test(userId)) {
      error.value = 'A user id is 1 to 64 characters of A-Z a-z 0-9 _ . -';
      return;
    }
    let firstToken: string | undefined;
    try {
      // Asked here to learn whether dev tokens exist; the SDK asks again whenever it needs a new one.
      firstToken = await fetchDevToken(userId);
    } catch (cause) {
      if (pick !== generation) return;
      if (cause instanceof DevTokensUnavailableError) devTokens.value = 'unavailable';
      else error.value = describeError(cause);
      return;
    }
    if (pick !== generation) return;
    devTokens.value = 'available';
    localStorage.setItem(LAST_USER_KEY, userId);
    const getToken = async () => {
      const token = firstToken ?? (await fetchDevToken(userId));
      firstToken = undefined;
      return token;
    };
    user.value = { key: pick, userId, clientOptions: clientOptions(getToken) };
  }

  async function useToken(token: string): Promise<void> {
    const pick = ++generation;
    error.value = null;
    const userId = tokenSubject(token);
    if (userId === null) {
      error.value = 'That is not a JWT with a "sub" claim.';
      return;
    }
    const trimmed = token.trim();
    user.value = { key: pick, userId, clientOptions: clientOptions(async () => trimmed) };
  }

  return { user, devTokens, error, useUser, useToken };
}
