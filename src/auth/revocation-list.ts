import { LRUCache } from 'lru-cache';
import type { RevocationStore } from '../tasks/ports.js';
import { TokenError, type TokenVerifier } from './tokens.js';
import type { Viewer } from './viewer.js';

/**
 * Whether a token issued at `issuedAt` (epoch ms, `null` when the token does not say) is revoked
 * by a revoked-before timestamp (0: never revoked). A token without `iat` cannot show that it is
 * newer, so any revocation of its user refuses it. `iat` counts whole seconds: a token issued in
 * the same second as a revocation, even after it, is refused too.
 */
export function issuedBefore(issuedAt: number | null, revokedBefore: number): boolean {
  return revokedBefore > 0 && (issuedAt === null || issuedAt < revokedBefore);
}

export interface RevocationListOptions {
  /**
   * How long a timestamp read from the store is used before it is read again. Revocations reach
   * this gateway at once over the control channel; this bounds how long one that did not (a
   * control connection down at the time) is missed by new requests. @default 1000
   */
  readonly cacheTtlMs?: number;
  /** Users whose timestamp is remembered. @default 50000 */
  readonly cacheSize?: number;
}

/**
 * This gateway's view of the users' revoked-before timestamps ({@link RevocationStore}): read
 * from the store at most once per user per `cacheTtlMs` (concurrent reads of one user share
 * one), updated at once by this gateway's revocations and those it hears of, and dropped when the
 * control channel may have missed some.
 */
export class RevocationList {
  readonly #store: RevocationStore;
  readonly #known: LRUCache<string, number>;
  readonly #reading = new Map<string, Promise<number>>();
  /** Bumped by {@link forget}: reads begun before it are not remembered. */
  #generation = 0;

  constructor(
    store: RevocationStore,
    { cacheTtlMs = 1_000, cacheSize = 50_000 }: RevocationListOptions = {},
  ) {
    this.#store = store;
    this.#known = new LRUCache<string, number>({ max: cacheSize, ttl: cacheTtlMs });
  }

  /**
   * Revokes the user's tokens issued before `before` (epoch ms), in the store; resolves with the
   * stored timestamp (the later of this and any earlier revocation).
   */
  async revoke(userId: string, before: number): Promise<number> {
    const stored = await this.#store.revokeBefore(userId, before);
    this.learn(userId, stored);
    return stored;
  }

  /** Takes in a revocation made elsewhere (a control message). */
  learn(userId: string, revokedBefore: number): void {
    if (!Number.isFinite(revokedBefore) || revokedBefore <= 0) return;
    const known = this.#known.get(userId) ?? 0;
    if (revokedBefore > known) this.#known.set(userId, revokedBefore);
  }

  /** Forgets every timestamp: the next check of each user reads the store. */
  forget(): void {
    this.#generation++;
    this.#known.clear();
    this.#reading.clear();
  }

  /** The user's revoked-before timestamp: remembered, or read from the store. */
  revokedBefore(userId: string): Promise<number> {
    const known = this.#known.get(userId);
    if (known !== undefined) return Promise.resolve(known);
    const pending = this.#reading.get(userId);
    if (pending) return pending;
    const generation = this.#generation;
    const reading = this.#store.revokedBefore(userId).then(
      (stored) => {
        if (this.#reading.get(userId) === reading) this.#reading.delete(userId);
        // Something learned meanwhile is as true as what was read.
        const revokedBefore = Math.max(stored, this.#known.get(userId) ?? 0);
        if (generation === this.#generation) this.#known.set(userId, revokedBefore);
        return revokedBefore;
      },
      (error: unknown) => {
        if (this.#reading.get(userId) === reading) this.#reading.delete(userId);
        throw error;
      },
    );
    this.#reading.set(userId, reading);
    return reading;
  }

  /** Whether the viewer's token was issued before its user's revocation. */
  async isRevoked(viewer: Viewer): Promise<boolean> {
    return issuedBefore(viewer.issuedAt, await this.revokedBefore(viewer.userId));
  }

  /**
   * Whether what this gateway knows right now revokes the viewer's token: the synchronous check
   * made just before a connection or subscription is registered, so that a revocation landing
   * between the (asynchronous) {@link isRevoked} and the registration is not missed.
   */
  isKnownRevoked(viewer: Viewer): boolean {
    return issuedBefore(viewer.issuedAt, this.#known.peek(viewer.userId, { allowStale: true }) ?? 0);
  }
}

/**
 * `verifier` that also refuses (TokenError "token revoked") a token issued before its user's
 * revocation: one check for every way in (HTTP and SSE, graphql-ws connect, per-operation tokens).
 */
export function revocationCheckingVerifier(
  verifier: TokenVerifier,
  revocations: RevocationList,
): TokenVerifier {
  return {
    async verify(token, options) {
      const viewer = await verifier.verify(token, options);
      if (await revocations.isRevoked(viewer)) throw new TokenError('token revoked');
      return viewer;
    },
  };
}
