/**
 * Which browser origins may call the service: the CORS headers of HTTP responses and the `Origin`
 * check of WebSocket upgrades, from `CORS_ORIGINS` and `NODE_ENV` (OWASP's CORS guidance: no
 * credentialed reflection of an arbitrary origin, no `null` origin).
 *
 * | `CORS_ORIGINS` | CORS headers | WebSocket upgrade with an `Origin` |
 * |---|---|---|
 * | unset, outside production | any origin reflected, with credentials | any |
 * | unset, production | none (same-origin only) | the service's own origin only |
 * | a list | a listed origin reflected, with credentials; others none | listed, or the service's own |
 * | `*` (alone or in the list) | any other origin reflected, without credentials | any |
 *
 * A WebSocket upgrade without `Origin` (a non-browser client) is always let through: tokens, not
 * cookies, authenticate, so the check stops cross-site pages, not other programs.
 */

/** yoga's `cors` option for one request (`@whatwg-node/server`'s `CORSOptions`). */
export type CorsOptions = { origin?: string[]; credentials?: boolean } | false;

export interface OriginPolicy {
  /** yoga's `cors` option: what a request's `Origin` is answered with. */
  readonly cors: (request: Request) => CorsOptions;
  /** Whether a WebSocket upgrade with these `Origin` and `Host` headers may proceed. */
  readonly allowsUpgrade: (origin: string | undefined, host: string | undefined) => boolean;
}

/**
 * `@whatwg-node/server` reflects the request's `Origin` (and adds `Vary: Origin`) when `origin`
 * holds `*`: used only for an origin this policy has already let through.
 */
const REFLECT_ORIGIN = ['*'];

/** A `Host` header: a name, IPv4 address or bracketed IPv6 address, with an optional port. */
const HOST_HEADER = /^[A-Za-z0-9.-]+(:\d+)?$|^\[[0-9A-Fa-f:.]+\](:\d+)?$/;

/** Whether `origin` is the service's own: its host (and port) is the `Host` the request was sent to. */
export function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !HOST_HEADER.test(host)) return false;
  try {
    const parsed = new URL(origin);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return false;
    // Parsed with the origin's scheme, so that a default port written out compares equal.
    return new URL(`${parsed.protocol}//${host}`).host === parsed.host;
  } catch {
    return false;
  }
}

export function createOriginPolicy({
  corsOrigins,
  production,
}: {
  readonly corsOrigins: readonly string[];
  readonly production: boolean;
}): OriginPolicy {
  const listed = new Set(corsOrigins.filter((origin) => origin !== '*'));
  const anyOrigin = corsOrigins.includes('*');
  const devDefault = corsOrigins.length === 0 && !production;

  return {
    cors(request) {
      const origin = request.headers.get('origin');
      if (devDefault) return { origin: REFLECT_ORIGIN, credentials: true };
      if (origin === null) return false;
      if (listed.has(origin)) return { origin: REFLECT_ORIGIN, credentials: true };
      // Never `null`: sandboxed frames and local files send it.
      if (anyOrigin && origin !== 'null') return { origin: REFLECT_ORIGIN, credentials: false };
      return false;
    },
    allowsUpgrade(origin, host) {
      if (origin === undefined || devDefault || anyOrigin || listed.has(origin)) return true;
      return isSameOrigin(origin, host);
    },
  };
}
