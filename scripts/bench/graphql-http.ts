/** GraphQL operations POSTed to the service over HTTP with a bearer token. */
import type { JsonHttpClient } from './http-json-client.js';

/** A GraphQL response, whatever the transport carried it. */
export interface GraphQLReply {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: readonly { message: string }[];
}

/** The first error's message, or `null` when the reply has none. */
export function errorText(reply: GraphQLReply): string | null {
  return reply.errors && reply.errors.length > 0 ? (reply.errors[0]?.message ?? 'error') : null;
}

/** Sends operations to one GraphQL endpoint as one caller. */
export class GraphqlHttp {
  readonly #client: JsonHttpClient;
  readonly #url: string;
  readonly #token: string;

  constructor(client: JsonHttpClient, url: string, token: string) {
    this.#client = client;
    this.#url = url;
    this.#token = token;
  }

  /** Resolves with the reply, errors included; rejects when the answer is not a GraphQL response. */
  async request(query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
    const reply = await this.#client.post(
      this.#url,
      { query, variables },
      { authorization: `Bearer ${this.#token}` },
    );
    const body = reply.body as GraphQLReply | null;
    if (body === null || typeof body !== 'object' || (reply.status !== 200 && !body.errors)) {
      throw new Error(`HTTP ${reply.status}: ${reply.text.slice(0, 200)}`);
    }
    return body;
  }
}
