/**
 * `export-retry` in Workers: the same `createExporter` with the wasm module that
 * wrangler compiles at deploy time. For the Durable Object spool, use
 * `export-retry/workers`.
 */
import "./wasm.workers.js";
import { createExporterWith } from "./exporter.js";
import { TimerScheduler } from "./timer-scheduler.js";

/** @type {import("./index.d.ts").createExporter} */
export function createExporter(options) {
  return createExporterWith(options, { scheduler: new TimerScheduler() });
}

export { MemoryStorage } from "./memory-storage.js";
