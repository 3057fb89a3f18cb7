import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuthConfig } from '../config.js';
import { mintToken } from './tokens.js';

export const DEV_TOKEN_PATH = '/dev/token';
/** What a dev token may name as its user. */
const USER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_BODY_BYTES = 1_024;
/** Short enough that the demo page's SDK exercises its refresh through `POST /dev/token`. */
const DEV_TOKEN_LIFETIME = '1h';

export type DevTokenHandler = (req: IncomingMessage, res: ServerResponse) => void;

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
    .end(JSON.stringify(body));
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

/**
 * Whether a `Host` header names this machine by a loopback name or address (any port). A page of
 * another site that rebinds its DNS name to 127.0.0.1 reaches the loopback peer check with its
 * own name as Host, so this refuses it.
 */
function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined || !/^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/.test(host)) return false;
  let hostname: string;
  try {
    hostname = new URL(`http://${host}`).hostname;
  } catch {
    return false;
  }
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** The body as text, or null when it is larger than `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) return null;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `{ userId, service? }` from a request body, or why it is not one. */
function parseRequest(text: string): { userId: string; service: boolean } | string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'body is not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'expected { userId, service? }';
  const { userId, service = false } = body as { userId?: unknown; service?: unknown };
  if (typeof userId !== 'string' || !USER_ID.test(userId)) {
    return 'userId must be 1 to 64 characters of A-Z a-z 0-9 _ . -';
  }
  if (typeof service !== 'boolean') return 'service must be true or false';
  return { userId, service };
}

/**
 * `POST /dev/token` `{ userId, service? }` -> `{ token }`, signed with the ephemeral secret, so the
 * demo page can act as any user. Only exists with ephemeral auth (no AUTH_* key, not production):
 * returns null otherwise, and the path is then unknown like any other. Answers only a loopback peer
 * that names a loopback host (403 otherwise).
 */
export function createDevTokenHandler(auth: AuthConfig): DevTokenHandler | null {
  if (auth.mode !== 'secret' || !auth.ephemeral) return null;
  const { secret, issuer, audience } = auth;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Dev tokens can name any user, even a service: only the machine itself may ask for one,
    // whatever HOST the server listens on.
    if (!isLoopback(req.socket.remoteAddress)) {
      return sendJson(res, 403, { error: 'dev tokens are minted for loopback callers only' });
    }
    if (!isLoopbackHost(req.headers.host)) {
      return sendJson(res, 403, {
        error: 'dev tokens are minted for Host localhost, 127.0.0.1 or [::1] only',
      });
    }
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'use POST' }, { allow: 'POST' });
    // A cross-site form cannot send this content type without a CORS preflight, which is not answered.
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      return sendJson(res, 415, { error: 'expected content-type: application/json' });
    }
    const text = await readBody(req, MAX_BODY_BYTES);
    if (text === null) {
      res.setHeader('connection', 'close');
      return sendJson(res, 413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
    }
    const request = parseRequest(text);
    if (typeof request === 'string') return sendJson(res, 400, { error: request });
    const token = await mintToken(secret, request.userId, {
      service: request.service,
      expiresIn: DEV_TOKEN_LIFETIME,
      issuer,
      audience,
    });
    sendJson(res, 200, { token });
  }

  return (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.end();
    });
  };
}
