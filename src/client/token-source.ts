/** Holds the current token, asking `getToken` again when told the old one is stale. */
export class TokenSource {
  readonly #getToken: (() => string | Promise<string>) | undefined;
  #token: string | undefined;
  #refreshing: Promise<string | undefined> | null = null;

  constructor(token: string | undefined, getToken: (() => string | Promise<string>) | undefined) {
    this.#token = token;
    this.#getToken = getToken;
  }

  get canRefresh(): boolean {
    return this.#getToken !== undefined;
  }

  /** The latest token, synchronously (for urql's fetchOptions). */
  get latest(): string | undefined {
    return this.#token;
  }

  async current(): Promise<string | undefined> {
    return this.#token ?? (await this.fresh());
  }

  /** A new token from `getToken` (one call for concurrent askers); the fixed one without it. */
  fresh(): Promise<string | undefined> {
    const getToken = this.#getToken;
    if (!getToken) return Promise.resolve(this.#token);
    if (!this.#refreshing) {
      // Through then(): a getToken that throws synchronously still yields a rejected promise.
      const refreshing = Promise.resolve()
        .then(getToken)
        .then((token) => {
          this.#token = token;
          return token;
        });
      this.#refreshing = refreshing;
      const settled = () => {
        if (this.#refreshing === refreshing) this.#refreshing = null;
      };
      refreshing.then(settled, settled);
    }
    return this.#refreshing;
  }
}
