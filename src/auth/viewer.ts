/** Who is calling, from a verified token. */
export interface Viewer {
  /** The token's `sub`. */
  readonly userId: string;
  readonly roles: readonly string[];
  /** A system caller (`roles` holds `service`): may act on any user's tasks. */
  readonly isService: boolean;
  /** Epoch ms when the token expires (verified tokens always carry `exp`). */
  readonly expiresAt: number | null;
  /** Epoch ms when the token was issued (`iat`), if it says; at most 30 s ahead of this clock. */
  readonly issuedAt: number | null;
}

export const SERVICE_ROLE = 'service';
