import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';

/** Where `npm run build` writes the demo page (`src/demo/vite.config.ts`). */
export const DEMO_PAGE_DIR = fileURLToPath(new URL('../../dist/demo/', import.meta.url));

export interface DemoPageOptions {
  /** The built page: `index.html` and `assets/`. @default {@link DEMO_PAGE_DIR} */
  readonly dir?: string;
  /** Linked from the page shown while the demo is not built. */
  readonly graphqlPath: string;
  readonly logger: Logger;
}

/** Handles a request and returns true, or returns false when the request is not for the page. */
export type DemoPageHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** A file name Vite emits under `assets/`; anything else (`..`, `/`, `%`) is not ours to serve. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
/** Vite names assets `<name>-<hash>.<ext>`: such a file never changes, so it may be cached for good. */
const HASHED_NAME = /-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * The page and everything it loads come from this origin; the page talks to this origin only
 * (HTTP and WebSocket). Nothing inline, nothing from a CDN.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "object-src 'none'",
].join('; ');

function notBuiltPage(graphqlPath: string): string {
  return `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Task status service</title>
<h1>Task status service</h1>
<p>The demo page is not built. Run <code>npm run build</code>, then reload.</p>
<p>GraphiQL: <a href="${graphqlPath}">${graphqlPath}</a></p>
</html>
`;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/**
 * Serves the demo page built into `dir`: `/` (and `/index.html`), revalidated on every load, and
 * `/assets/*`, cached for good when hashed. Files are read on each request, so `npm run build`
 * takes effect without a restart.
 */
export function createDemoPageHandler({
  dir = DEMO_PAGE_DIR,
  graphqlPath,
  logger,
}: DemoPageOptions): DemoPageHandler {
  const assetsDir = path.join(dir, 'assets');

  async function send(
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    headers: Record<string, string>,
  ): Promise<boolean> {
    let body: Buffer;
    let modified: Date;
    try {
      [body, { mtime: modified }] = await Promise.all([readFile(file), stat(file)]);
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
    const etag = `W/"${body.length.toString(16)}-${modified.getTime().toString(16)}"`;
    const common = {
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'x-content-type-options': 'nosniff',
      etag,
      ...headers,
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, common).end();
      return true;
    }
    res.writeHead(200, { ...common, 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }

  async function serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    if (pathname === '/' || pathname === '/index.html') {
      const sent = await send(req, res, path.join(dir, 'index.html'), {
        'cache-control': 'no-cache',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'referrer-policy': 'no-referrer',
      });
      if (!sent) {
        res
          .writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' })
          .end(req.method === 'HEAD' ? undefined : notBuiltPage(graphqlPath));
      }
      return;
    }
    const name = pathname.slice('/assets/'.length);
    const sent =
      ASSET_NAME.test(name) &&
      (await send(req, res, path.join(assetsDir, name), {
        'cache-control': HASHED_NAME.test(name) ? IMMUTABLE : 'no-cache',
      }));
    if (!sent) res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not Found');
  }

  return (req, res) => {
    const pathname = (req.url ?? '/').split('?')[0] ?? '/';
    if (pathname !== '/' && pathname !== '/index.html' && !pathname.startsWith('/assets/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end();
      return true;
    }
    serve(req, res, pathname).catch((err: unknown) => {
      logger.error('demo page file unreadable', { err, path: pathname });
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Internal Server Error');
    });
    return true;
  };
}
