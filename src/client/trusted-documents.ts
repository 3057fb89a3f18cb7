import { CombinedError, composeExchanges, type Exchange, mapExchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';

/** `extensions.code` of the server's answer to a hash it holds no document for. */
const NOT_FOUND_CODE = 'PERSISTED_QUERY_NOT_FOUND';
/** How a server without trusted documents (an earlier version) answers an operation without `query`. */
const NO_QUERY_MESSAGE = /^Must provide query string/;

/** Whether `error` says the server could not run the operation by its hash. */
function isMiss(error: { message: string; extensions?: Record<string, unknown> | undefined }): boolean {
  return error.extensions?.['code'] === NOT_FOUND_CODE || NO_QUERY_MESSAGE.test(error.message);
}
/** The exact message by which `@urql/exchange-persisted` recognises a miss and resends the text. */
const NOT_FOUND_MESSAGE = 'PersistedQueryNotFound';
const HASH_PREFIX = 'sha256:';

/** The hash codegen wrote into a typed document's `__meta__`, without its `sha256:` prefix. */
function codegenHash(document: unknown): string | null {
  const meta: unknown = (document as { __meta__?: unknown } | null)?.__meta__;
  const hash: unknown = (meta as { hash?: unknown } | undefined)?.hash;
  if (typeof hash !== 'string') return null;
  return hash.startsWith(HASH_PREFIX) ? hash.slice(HASH_PREFIX.length) : hash;
}

/**
 * Sends every operation of the SDK by the sha256 hash codegen gave it
 * (`extensions.persistedQuery { version: 1, sha256Hash }`, no `query`) — queries and mutations
 * over HTTP, subscriptions over graphql-ws alike — through `@urql/exchange-persisted`. Put it
 * before the subscription and fetch exchanges.
 *
 * When the server answers PERSISTED_QUERY_NOT_FOUND (a server built from other operations), or
 * "Must provide query string" (an earlier server, without trusted documents), the operation is
 * sent again with its text, and that document is sent as text from then on. The library only knows
 * a miss by the message `PersistedQueryNotFound`; the server's messages say more, so a miss is
 * recognised here and handed on under that message. (An earlier server closes a graphql-ws socket
 * whose subscription has no text with 4400, which this cannot turn into a miss: against one, as
 * during a rolling deploy that updates clients first, set `trustedDocuments: false`.)
 */
export function trustedDocumentsExchange(): Exchange {
  /** Hashes the server held no document for: those documents go as text. */
  const missing = new Set<string>();
  const recogniseMisses = mapExchange({
    onResult(result) {
      const hash: unknown = (
        result.operation.extensions?.persistedQuery as { sha256Hash?: unknown } | undefined
      )?.sha256Hash;
      const error = result.error;
      if (typeof hash !== 'string' || !error) return result;
      if (!error.graphQLErrors.some(isMiss)) return result;
      missing.add(hash);
      return {
        ...result,
        error: new CombinedError({
          graphQLErrors: error.graphQLErrors.map((e) =>
            isMiss(e) ? { message: NOT_FOUND_MESSAGE, extensions: e.extensions } : e,
          ),
          ...(error.response === undefined ? {} : { response: error.response }),
        }),
      };
    },
  });
  return composeExchanges([
    persistedExchange({
      enableForMutation: true,
      enableForSubscriptions: true,
      // POST as every other request of the SDK: a token travels in a header, never in a URL.
      preferGetForPersistedQueries: false,
      generateHash: async (_text, document) => {
        const hash = codegenHash(document);
        return hash === null || missing.has(hash) ? null : hash;
      },
    }),
    recogniseMisses,
  ]);
}
