import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import { GraphQLError } from 'graphql';
import type { GraphQLHTTPExtensions, Plugin } from 'graphql-yoga';
import SDK_DOCUMENTS from '../../client/generated/persisted-documents.json' with { type: 'json' };
import { ErrorCode } from '../error-mapper.js';

const HTTP_400: GraphQLHTTPExtensions = { status: 400 };

const ERRORS = {
  notFound: {
    message:
      'PersistedQueryNotFound: extensions.persistedQuery.sha256Hash names no trusted document of this server',
    extensions: { code: ErrorCode.PersistedQueryNotFound, http: HTTP_400 },
  },
  persistedQueryOnly: {
    message:
      'Only trusted documents are accepted: send extensions.persistedQuery { version: 1, sha256Hash } of one of the SDK documents instead of query',
    extensions: { code: ErrorCode.PersistedQueryOnly, http: HTTP_400 },
  },
  keyNotFound: {
    message: 'Must provide query string or extensions.persistedQuery { version: 1, sha256Hash }.',
    extensions: { code: ErrorCode.BadRequest, http: HTTP_400 },
  },
} as const;

const HASH_PREFIX = 'sha256:';

/** What an operation sends: a document's text, or the hash of a trusted one in its extensions. */
export interface OperationParams {
  readonly query?: unknown;
  readonly extensions?: unknown;
}

/** The `sha256Hash` of `extensions.persistedQuery` (version 1), as the yoga plugin reads it. */
function persistedHash(extensions: unknown): string | null {
  if (typeof extensions !== 'object' || extensions === null) return null;
  const persisted: unknown = (extensions as { persistedQuery?: unknown }).persistedQuery;
  if (typeof persisted !== 'object' || persisted === null) return null;
  const { version, sha256Hash } = persisted as { version?: unknown; sha256Hash?: unknown };
  return version === 1 && typeof sha256Hash === 'string' ? sha256Hash : null;
}

/**
 * The trusted documents: the SDK's operations by the sha256 of their text, as `npm run codegen`
 * writes them to `src/client/generated/persisted-documents.json` (keys `sha256:<hex>`); a hash is
 * accepted with or without that prefix. With `only`, a document's text is refused.
 */
export class TrustedDocuments {
  private readonly byHash: ReadonlyMap<string, string>;

  constructor(
    documents: Readonly<Record<string, string>>,
    readonly only: boolean,
  ) {
    this.byHash = new Map(
      Object.entries(documents).map(([key, text]) => [
        key.startsWith(HASH_PREFIX) ? key.slice(HASH_PREFIX.length) : key,
        text,
      ]),
    );
  }

  /** The SDK's documents, loaded once with this module. */
  static ofSdk(only: boolean): TrustedDocuments {
    return new TrustedDocuments(SDK_DOCUMENTS, only);
  }

  /** The text of the trusted document with this hash, or null. */
  lookup(hash: string): string | null {
    const hex = hash.startsWith(HASH_PREFIX) ? hash.slice(HASH_PREFIX.length) : hash;
    return this.byHash.get(hex.toLowerCase()) ?? null;
  }

  /**
   * The document text to run for an operation that does not pass through yoga's HTTP handling
   * (graphql-ws), by the same rules as {@link useTrustedDocuments}; or the error that refuses it.
   */
  resolve(params: OperationParams): string | GraphQLError {
    if (typeof params.query === 'string' && params.query !== '') {
      return this.only
        ? new GraphQLError(ERRORS.persistedQueryOnly.message, ERRORS.persistedQueryOnly)
        : params.query;
    }
    const hash = persistedHash(params.extensions);
    if (hash === null) return new GraphQLError(ERRORS.keyNotFound.message, ERRORS.keyNotFound);
    return this.lookup(hash) ?? new GraphQLError(ERRORS.notFound.message, ERRORS.notFound);
  }
}

/**
 * A `subscribe` naming a trusted document by `extensions.persistedQuery` without `query`, given an
 * empty `query`: graphql-ws 6 refuses a subscribe whose `query` is not a string (4400) before
 * `onSubscribe` could look the hash up. For graphql-ws's `jsonMessageReviver`, on the whole message.
 */
export function withEmptyQueryForPersisted(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const { type, payload } = value as { type?: unknown; payload?: unknown };
  if (type !== 'subscribe' || typeof payload !== 'object' || payload === null) return value;
  const { query, extensions } = payload as { query?: unknown; extensions?: unknown };
  if (query !== undefined || typeof extensions !== 'object' || extensions === null) return value;
  if (!('persistedQuery' in extensions)) return value;
  return { ...value, payload: { ...payload, query: '' } };
}

/**
 * yoga's persisted operations over HTTP and SSE: `extensions.persistedQuery.sha256Hash` without
 * `query` runs that trusted document (validated and limited like any other); an unknown hash gets
 * PERSISTED_QUERY_NOT_FOUND; with `trusted.only`, a document's text gets PERSISTED_QUERY_ONLY. Every
 * refusal is HTTP 400. graphql-ws operations do not pass through yoga's `onParams`: the WebSocket
 * hooks call {@link TrustedDocuments.resolve}.
 */
export function useTrustedDocuments(trusted: TrustedDocuments): Plugin {
  return usePersistedOperations({
    getPersistedOperation: (key) => trusted.lookup(key),
    extractPersistedOperationId: (params) => persistedHash(params.extensions),
    allowArbitraryOperations: !trusted.only,
    customErrors: ERRORS,
  });
}
