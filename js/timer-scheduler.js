/**
 * Node wake-up mechanism: one pending wake at a time, on an unref'd timer,
 * so a scheduled drain never keeps the process alive.
 */

/** setTimeout treats delays above this as 1 ms; longer waits are re-armed in steps. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export class TimerScheduler {
  #onError;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer;
  /** @type {number | undefined} */
  #atMs;
  /** @type {(() => unknown) | undefined} */
  #wake;

  /** @param {{ onError?: (err: unknown) => void }} [options] receives errors thrown or rejected by wake() */
  constructor({ onError = (err) => console.error("export-retry: wake-up failed:", err) } = {}) {
    if (typeof onError !== "function") throw new TypeError("onError must be a function");
    this.#onError = onError;
  }

  /** The wall-clock time (ms since epoch) of the pending wake, or undefined. */
  get pending() {
    return this.#atMs;
  }

  /**
   * Calls `wake()` at wall-clock time `atMs` (Date.now() based), replacing any pending wake.
   * @param {number} atMs @param {() => unknown} wake may return a promise
   */
  schedule(atMs, wake) {
    if (!Number.isFinite(atMs)) throw new TypeError("atMs must be a finite number");
    if (typeof wake !== "function") throw new TypeError("wake must be a function");
    this.cancel();
    this.#atMs = atMs;
    this.#wake = wake;
    this.#arm();
  }

  /** Clears the pending wake, if any. */
  cancel() {
    clearTimeout(this.#timer);
    this.#timer = this.#atMs = this.#wake = undefined;
  }

  #arm() {
    const delay = Math.min(Math.max(0, this.#atMs - Date.now()), MAX_TIMEOUT_MS);
    this.#timer = setTimeout(() => this.#fire(), delay);
    this.#timer.unref?.();
  }

  #fire() {
    if (Date.now() < this.#atMs) return this.#arm(); // clamped delay elapsed early: wait the rest
    const wake = this.#wake;
    this.#timer = this.#atMs = this.#wake = undefined;
    try {
      const result = wake();
      if (typeof result?.then === "function") result.then(undefined, (err) => this.#report(err));
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err) {
    try {
      this.#onError(err);
    } catch (secondary) {
      console.error("export-retry: onError threw:", secondary, "while reporting:", err);
    }
  }
}
