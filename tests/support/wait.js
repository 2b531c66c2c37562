/**
 * Condition waits for the integration tests: poll a predicate until it holds or a
 * deadline passes. Never a fixed sleep: the deadline is only the failure bound.
 */
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Polls `fn` (sync or async) every `intervalMs` until it returns a truthy value,
 * which is returned; rejects with `what` after `timeoutMs`.
 */
export async function waitUntil(fn, { timeoutMs = 5000, what = "condition", intervalMs = 5 } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (performance.now() >= deadline) {
      throw new Error(`waitUntil: timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * Collects unhandled rejections of this test file and fails the run on any:
 * sets the exit code at once, and `assertNone()` (call it from an after hook or
 * a test) throws listing them.
 */
export function guardUnhandledRejections() {
  const seen = [];
  process.on("unhandledRejection", (reason) => {
    seen.push(reason);
    process.exitCode = 1;
    console.error("UNHANDLED REJECTION:", reason);
  });
  return {
    seen,
    assertNone() {
      if (seen.length > 0) {
        throw new Error(`${seen.length} unhandled rejection(s): ${seen.map((r) => r?.stack ?? String(r)).join("\n---\n")}`);
      }
    },
  };
}

/**
 * A LIFO cleanup stack for one test: `defer(fn)` runs fns in reverse order of
 * registration after the test (so an exporter shuts down before its backend closes).
 */
export function cleanups(t) {
  const stack = [];
  t.after(async () => {
    const errors = [];
    while (stack.length > 0) {
      try {
        await stack.pop()();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  });
  return (fn) => stack.push(fn);
}
