/** The `subscribe` payload of a load-generator connection, by {@link SubscribeAs}. */
import fs from 'node:fs';
import { SUBSCRIPTION_QUERY, type SubscribeAs, userId } from './protocol.js';

const PERSISTED_DOCUMENTS = new URL('../../src/client/generated/persisted-documents.json', import.meta.url);

/** The SDK's `TaskCompleted` subscription: its hash (without `sha256:`) and its text. */
function sdkTaskCompleted(): { hash: string; text: string } {
  const documents = JSON.parse(fs.readFileSync(PERSISTED_DOCUMENTS, 'utf8')) as Record<string, string>;
  const found = Object.entries(documents).find(([, text]) => /\bsubscription TaskCompleted\b/.test(text));
  if (!found) throw new Error(`no TaskCompleted subscription in ${PERSISTED_DOCUMENTS.pathname}`);
  return { hash: found[0].replace(/^sha256:/, ''), text: found[1] };
}

/** Builds the payload for connection `index` (one user each). */
export function subscribePayloads(as: SubscribeAs): (index: number) => Record<string, unknown> {
  if (as === 'bench') return (index) => ({ query: SUBSCRIPTION_QUERY, variables: { u: userId(index) } });
  const { hash, text } = sdkTaskCompleted();
  const variables = (index: number) => ({ userId: userId(index), after: null });
  if (as === 'sdk-text') return (index) => ({ query: text, variables: variables(index) });
  // As the SDK sends it over graphql-ws: no text, the hash in the extensions.
  const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
  return (index) => ({ query: '', variables: variables(index), extensions });
}
