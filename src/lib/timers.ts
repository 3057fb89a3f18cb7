/** Longest delay `setTimeout` honours (~24.8 days); a later deadline is reached in several steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
