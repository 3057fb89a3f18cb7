import { createPublicKey, webcrypto } from 'node:crypto';
import {
  createRemoteJWKSet,
  errors,
  importJWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
  SignJWT,
} from 'jose';
import { LRUCache } from 'lru-cache';
import type { AuthConfig, TokenClaims } from '../config.js';
import { userIdProblem } from '../tasks/user-id.js';
import { SERVICE_ROLE, type Viewer } from './viewer.js';

/** Why a token was refused; the message is safe to show to the caller. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
}

export interface TokenVerifier {
  /** Verifies a JWT and returns its caller, or throws {@link TokenError}. */
  verify(token: string, options?: { readonly cache?: boolean }): Promise<Viewer>;
}

/** Verified tokens remembered per verifier. */
const VERIFIED_TOKEN_CACHE_SIZE = 10_000;

/**
 * The longest a verified token is remembered, however far off its expiry: a JWKS key rotated out
 * stops being honoured after at most this long.
 */
const VERIFIED_TOKEN_MAX_TTL_MS = 5 * 60_000;

const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * How far in the future an `iat` may lie (issuers' clocks run a little ahead): beyond it the token
 * is refused, as one dated later would outlive a revocation that compares against its `iat`.
 */
const MAX_IAT_SKEW_S = 30;

/**
 * Verifies signature, algorithm, `exp` (required), `nbf`, and `iss` / `aud` when the configuration
 * names them; the caller is `sub`, `roles` holding `service` makes a service caller.
 */
export function createTokenVerifier(auth: AuthConfig): TokenVerifier {
  // A token without `exp` would be valid for ever, on a socket too (OWASP JWT cheat sheet).
  const claims: JWTVerifyOptions = {
    requiredClaims: ['exp'],
    ...(auth.issuer !== undefined ? { issuer: auth.issuer } : {}),
    ...(auth.audience !== undefined ? { audience: [...auth.audience] } : {}),
  };
  let check: (token: string) => Promise<JWTPayload>;
  if (auth.mode === 'secret') {
    // A CryptoKey made once: given raw bytes or a KeyObject, jose imports the key into WebCrypto
    // again on every verification, which cost more than the signature check itself.
    const key = webcrypto.subtle.importKey(
      'raw',
      Buffer.from(auth.secret),
      { name: 'HMAC', hash: 'SHA-256' },
      false,
      ['verify'],
    );
    check = async (token) =>
      (await jwtVerify(token, await key, { ...claims, algorithms: ['HS256'] })).payload;
  } else if (auth.mode === 'jwks') {
    const keys: JWTVerifyGetKey = createRemoteJWKSet(auth.jwksUrl);
    check = async (token) =>
      (await jwtVerify(token, keys, { ...claims, algorithms: ASYMMETRIC_ALGORITHMS })).payload;
  } else {
    const key = createPublicKey(auth.publicKeyPem);
    // One CryptoKey per algorithm, imported on first use (see the secret case).
    const imported = new Map<string, Promise<CryptoKey>>();
    const keyFor: JWTVerifyGetKey = ({ alg }) => {
      let cryptoKey = imported.get(alg);
      if (!cryptoKey) {
        cryptoKey = importJWK(key.export({ format: 'jwk' }), alg) as Promise<CryptoKey>;
        imported.set(alg, cryptoKey);
      }
      return cryptoKey;
    };
    check = async (token) =>
      (await jwtVerify(token, keyFor, { ...claims, algorithms: ASYMMETRIC_ALGORITHMS })).payload;
  }
  const verifyNow = async (token: string): Promise<Viewer> => {
    let payload: JWTPayload;
    try {
      payload = await check(token);
    } catch (error) {
      throw new TokenError(describeJoseError(error));
    }
    if (typeof payload.sub !== 'string' || userIdProblem(payload.sub) !== null) {
      throw new TokenError('token has no usable "sub" claim (the user id)');
    }
    // jose checked that `iat`, when present, is a number, and that `exp` is.
    if (payload.iat !== undefined && payload.iat > Date.now() / 1000 + MAX_IAT_SKEW_S) {
      throw new TokenError('token "iat" claim is in the future');
    }
    const claim = payload['roles'];
    const roles = Array.isArray(claim)
      ? claim.filter((role): role is string => typeof role === 'string')
      : [];
    return {
      userId: payload.sub,
      roles,
      isService: roles.includes(SERVICE_ROLE),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
      issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : null,
    };
  };
  // The same token string always verifies to the same caller until it expires, and a signature
  // check costs tens of microseconds: remember recently used ones, each until its expiry.
  const verified = new LRUCache<string, Viewer>({ max: VERIFIED_TOKEN_CACHE_SIZE });
  return {
    async verify(token, options) {
      if (options?.cache === false) return verifyNow(token);
      const known = verified.get(token);
      if (known) return known;
      const viewer = await verifyNow(token);
      const ttl = Math.min(
        VERIFIED_TOKEN_MAX_TTL_MS,
        viewer.expiresAt === null ? Number.POSITIVE_INFINITY : viewer.expiresAt - Date.now(),
      );
      // A TTL of 0 would mean "forever" to the cache; a token expiring this very moment is not kept.
      if (ttl >= 1) verified.set(token, viewer, { ttl });
      return viewer;
    },
  };
}

function describeJoseError(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'token expired';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return `token has no ${error.claim} claim`;
    if (error.claim === 'iss') return 'token issuer is not accepted';
    if (error.claim === 'aud') return 'token audience is not accepted';
    if (error.claim === 'nbf') return 'token is not valid yet';
    return `token claim "${error.claim}" is invalid: ${error.reason}`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not accepted';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'token is malformed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key matches the token';
  if (error instanceof errors.JOSEError) return `token rejected (${error.code})`;
  return 'token could not be verified';
}

/** Extracts the token from an `Authorization: Bearer <token>` value; `null` when absent. */
export function bearerToken(header: string | null | undefined): string | null {
  if (header === null || header === undefined || header.trim() === '') return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header.trim());
  if (!match?.[1]) throw new TokenError('expected "Authorization: Bearer <token>"');
  return match[1];
}

export interface MintOptions extends TokenClaims {
  readonly service?: boolean;
  /** A jose duration like `'1h'`, or seconds. @default '12h' */
  readonly expiresIn?: string | number;
}

/**
 * Signs an HS256 token for `userId` with `secret`, with `iat`, `exp`, and `iss` / `aud` when given
 * (all of `audience`).
 */
export async function mintToken(
  secret: string,
  userId: string,
  { service = false, expiresIn = '12h', issuer, audience }: MintOptions = {},
) {
  const jwt = new SignJWT({ roles: service ? [SERVICE_ROLE] : [] })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(userId)
    .setIssuedAt();
  jwt.setExpirationTime(
    typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn,
  );
  if (issuer !== undefined) jwt.setIssuer(issuer);
  if (audience !== undefined && audience.length > 0) {
    jwt.setAudience(audience.length === 1 ? (audience[0] as string) : [...audience]);
  }
  return jwt.sign(new TextEncoder().encode(secret));
}
