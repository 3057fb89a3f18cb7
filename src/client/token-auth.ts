import type { CombinedError, Exchange } from '@urql/core';
import { authExchange } from '@urql/exchange-auth';
import { errorCode } from './errors.js';
import type { TokenSource } from './token-source.js';

/** Whether the server refused the request's token (HTTP 401 or `extensions.code` UNAUTHENTICATED). */
function isUnauthenticated(error: CombinedError): boolean {
  return (
    error.response?.status === 401 ||
    error.graphQLErrors.some(
      (e) => errorCode({ message: e.message, extensions: e.extensions }) === 'UNAUTHENTICATED',
    )
  );
}

/**
 * The bearer token on every HTTP operation of the client's urql `Client` — the SDK's own calls
 * and any `useQuery` run through `TaskClient.urql` alike — through `@urql/exchange-auth`: the
 * first operations wait for the first token, and an operation the server answers UNAUTHENTICATED
 * is sent once more after `getToken` was asked for a fresh one (should that fail, the operation
 * fails with its error). Put it after the exchanges that
 * resend operations and before the ones that send them.
 */
export function tokenAuthExchange(tokens: TokenSource, onError: (error: unknown) => void): Exchange {
  return authExchange(async (utils) => {
    // Without a first token the operations go without one; an UNAUTHENTICATED answer asks again.
    await tokens.current().catch(onError);
    return {
      addAuthToOperation(operation) {
        const token = tokens.latest;
        return token === undefined
          ? operation
          : utils.appendHeaders(operation, { authorization: `Bearer ${token}` });
      },
      didAuthError: (error) => tokens.canRefresh && isUnauthenticated(error),
      async refreshAuth() {
        await tokens.fresh();
      },
    };
  });
}
