/** Who is calling, from a verified token. */
export interface Viewer {
  /** The token's `sub`. */
  readonly userId: string;
  readonly roles: readonly string[];
  /** A system caller (`roles` holds `service`): may act on any user's tasks. */
  readonly isService: boolean;
  /** Epoch ms when the token expires, if it does. */
  readonly expiresAt: number | null;
}

export const SERVICE_ROLE = 'service';
