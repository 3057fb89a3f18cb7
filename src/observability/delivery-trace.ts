/** What the subscription resolvers know of an event that the metrics do not see in the result. */
export interface TracedEvent {
  readonly appendedAt?: number | undefined;
  readonly replayed?: boolean | undefined;
}

/**
 * Hands the event behind a subscription result from the field resolver to the metrics plugin,
 * which sees only the result. One per operation: a subscription's results are produced one at a
 * time, so one slot suffices.
 */
export class DeliveryTrace {
  #pending: TracedEvent | null = null;

  /** Called by a subscription field's resolver with the event it resolves. */
  note(event: TracedEvent): void {
    this.#pending = event;
  }

  /** The event behind the result being sent, once. */
  take(): TracedEvent | null {
    const event = this.#pending;
    this.#pending = null;
    return event;
  }
}
