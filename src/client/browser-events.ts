/** The browser's globals the connection reacts to, looked up without assuming a DOM. */
interface BrowserGlobals {
  addEventListener?(type: string, listener: () => void): void;
  removeEventListener?(type: string, listener: () => void): void;
  navigator?: { onLine?: boolean };
  document?: {
    visibilityState?: string;
    addEventListener?(type: string, listener: () => void): void;
    removeEventListener?(type: string, listener: () => void): void;
  };
}
const browser = globalThis as BrowserGlobals;

/** Whether the browser says it is offline (never outside a browser). */
export function isOffline(): boolean {
  return browser.navigator?.onLine === false;
}

/** What to do when the browser goes online or offline, or the page becomes visible again. */
export interface BrowserEventHandlers {
  readonly online: () => void;
  readonly offline: () => void;
  readonly visible: () => void;
}

/** Listens to the browser's `online`, `offline` and `visibilitychange` (no-ops elsewhere); returns the removal. */
export function listenToBrowser(handlers: BrowserEventHandlers): () => void {
  const onOnline = () => handlers.online();
  const onOffline = () => handlers.offline();
  const onVisibility = () => {
    if (browser.document?.visibilityState === 'visible') handlers.visible();
  };
  browser.addEventListener?.('online', onOnline);
  browser.addEventListener?.('offline', onOffline);
  browser.document?.addEventListener?.('visibilitychange', onVisibility);
  return () => {
    browser.removeEventListener?.('online', onOnline);
    browser.removeEventListener?.('offline', onOffline);
    browser.document?.removeEventListener?.('visibilitychange', onVisibility);
  };
}
