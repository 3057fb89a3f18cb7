/**
 * GraphQL over HTTP as the soak's back-end caller uses it: a service token acting for users,
 * each call retried (bounded) across the live gateways through faults.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { livePorts } from './fleet.js';

interface GqlError {
  message: string;
  extensions?: { code?: string };
}
export interface GqlResponse<T> {
  data?: T | null;
  errors?: GqlError[];
}
/** Codes that are answers, not transient failures: retrying would not change them. */
const FINAL_CODES = new Set(['CONFLICT', 'BAD_USER_INPUT', 'NOT_FOUND', 'FORBIDDEN', 'UNAUTHENTICATED']);

export const service = { token: '' };
let nextGateway = 0;
export const serviceStats = {
  calls: 0,
  retries: 0,
  gaveUp: 0,
  /** Transient error codes the service answered (retried), by code: e.g. SERVICE_UNAVAILABLE. */
  transientCodes: {} as Record<string, number>,
};

export async function post<T>(port: number, query: string, variables: object, token: string) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(10_000),
  });
  // A GraphQL error may come with a 5xx (SERVICE_UNAVAILABLE is a 503): read it when it is JSON.
  if (response.status >= 500 && !response.headers.get('content-type')?.includes('json')) {
    throw new Error(`HTTP ${response.status}`);
  }
  return (await response.json()) as GqlResponse<T>;
}

/**
 * A service-token call to a live gateway, retried (bounded) on network failures and transient
 * errors. Resolves with the data, or with the error code of a final answer (e.g. CONFLICT).
 */
export async function serviceCall<T>(query: string, variables: object): Promise<{ data?: T; code?: string }> {
  serviceStats.calls++;
  for (let attempt = 0; attempt < 60; attempt++) {
    if (attempt > 0) {
      serviceStats.retries++;
      await delay(Math.min(2_000, 150 * attempt));
    }
    const ports = livePorts();
    const port = ports[nextGateway++ % Math.max(1, ports.length)];
    if (port === undefined) continue;
    try {
      const body = await post<T>(port, query, variables, service.token);
      const code = body.errors?.[0]?.extensions?.code;
      if (body.data && !body.errors?.length) return { data: body.data };
      if (code && FINAL_CODES.has(code)) return { code };
      const seen = code ?? 'NO_CODE';
      serviceStats.transientCodes[seen] = (serviceStats.transientCodes[seen] ?? 0) + 1;
    } catch {
      // refused, reset, timed out: try again, perhaps elsewhere
    }
  }
  serviceStats.gaveUp++;
  return { code: 'GAVE_UP' };
}
