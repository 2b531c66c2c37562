/** What the scenarios share: quiet loggers, temp dirs, payloads, waits. */
import dc from "node:diagnostics_channel";
import { mkdtemp, rm } from "node:fs/promises";
import { randomFillSync } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** A logger that keeps the lines (the bench prints none of them). */
export function quietLogger() {
  const lines = [];
  return { lines, warn: (m) => lines.push(`warn: ${m}`), error: (m) => lines.push(`error: ${m}`) };
}

export async function tempDir(tag) {
  return mkdtemp(join(tmpdir(), `export-retry-bench-${tag}-`));
}

export function removeDir(dir) {
  return rm(dir, { recursive: true, force: true });
}

/** A payload of `size` random bytes (incompressible, like protobuf with ids and timestamps). */
export function payload(size) {
  return randomFillSync(new Uint8Array(size));
}

/** Polls `fn` every `intervalMs` until truthy; throws `what` after `timeoutMs`. */
export async function until(fn, { timeoutMs = 60_000, intervalMs = 2, what = "condition" } = {}) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** A bare fetch POST, the way a careful caller does it: keep-alive (undici's default
 * pool, shared with the exporter), the same content type, the body cancelled unread. */
export async function barePost(url, body) {
  const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/x-protobuf" } });
  res.body?.cancel().catch(() => {});
  return res.status;
}

/** Deliveries the backend answered 2xx on `path`. */
export function deliveredOn(backend, path) {
  return backend.delivered.filter((r) => r.path === path);
}

/** Counts the TCP connections this process opens (to check keep-alive on both sides). */
export const connections = { opened: 0 };
dc.subscribe("net.client.socket", () => connections.opened++);
