import { onBeforeUnmount, type Ref, ref, shallowRef } from 'vue';
import { createDemoSession, type DemoSession, describeError } from './session.js';
import { DevTokensUnavailableError, fetchDevToken, tokenSubject, USER_ID_PATTERN } from './tokens.js';

/** Whether the server mints dev tokens; `unknown` until the first user is picked. */
export type DevTokenAvailability = 'unknown' | 'available' | 'unavailable';

export interface Identity {
  readonly session: Readonly<Ref<DemoSession | null>>;
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

/** Who the page acts as: one {@link DemoSession} at a time, replaced when the user changes. */
export function useIdentity(): Identity {
  const session = shallowRef<DemoSession | null>(null);
  const devTokens = ref<DevTokenAvailability>('unknown');
  const error = ref<string | null>(null);
  /** Ignores a slower, earlier pick that finishes after a later one. */
  let generation = 0;

  async function replaceSession(userId: string, getToken: () => Promise<string>, pick: number) {
    const previous = session.value;
    session.value = null;
    await previous?.dispose();
    if (pick !== generation) return;
    session.value = createDemoSession({ userId, getToken });
  }

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
    await replaceSession(
      userId,
      async () => {
        const token = firstToken ?? (await fetchDevToken(userId));
        firstToken = undefined;
        return token;
      },
      pick,
    );
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
    await replaceSession(userId, async () => trimmed, pick);
  }

  onBeforeUnmount(() => {
    generation++;
    void session.value?.dispose();
  });

  return { session, devTokens, error, useUser, useToken };
}
