/**
 * `export-retry` in Node: loads the wasm engine from its file and wakes the drain
 * with unref'd timers, so a process with a spooled backlog still exits promptly.
 */
import "./wasm.node.js";
import { createExporterWith } from "./exporter.js";
import { TimerScheduler } from "./timer-scheduler.js";

/** @type {import("./index.d.ts").createExporter} */
export function createExporter(options) {
  return createExporterWith(options, {
    scheduler: new TimerScheduler(),
    envTimeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT,
  });
}

export { MemoryStorage } from "./memory-storage.js";
