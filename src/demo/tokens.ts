/** The service's dev token endpoint (src/dev-token.ts): only there with an ephemeral secret. */
const DEV_TOKEN_URL = '/dev/token';

/** A user id the dev token endpoint accepts. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** The service mints no dev tokens (a key is configured, or production): paste a token instead. */
export class DevTokensUnavailableError extends Error {
  override readonly name = 'DevTokensUnavailableError';
}

/** A token for `userId` from `POST /dev/token`, signed with the running server's ephemeral secret. */
export async function fetchDevToken(userId: string): Promise<string> {
  const response = await fetch(DEV_TOKEN_URL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  if (response.status === 404) throw new DevTokensUnavailableError('this server mints no dev tokens');
  const body = (await response.json().catch(() => ({}))) as { token?: unknown; error?: unknown };
  if (!response.ok || typeof body.token !== 'string') {
    throw new Error(
      typeof body.error === 'string' ? body.error : `POST ${DEV_TOKEN_URL}: ${response.status}`,
    );
  }
  return body.token;
}

/** The `sub` claim (user id) of a JWT, read without verifying it; null when it has none. */
export function tokenSubject(token: string): string | null {
  const payload = token.trim().split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replaceAll('-', '+').replaceAll('_', '/'));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === 'string' ? sub : null;
  } catch {
    return null;
  }
}
