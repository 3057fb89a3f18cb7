import { Client, fetchExchange, subscriptionExchange } from '@urql/core';
import type { Client as WsClient } from 'graphql-ws';

/** An @urql/core client: queries and mutations over HTTP, subscriptions over the graphql-ws client. */
export function createUrqlClient(url: string, token: string, ws: WsClient): Client {
  return new Client({
    url,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    preferGetMethod: false,
  });
}
