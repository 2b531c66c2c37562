/**
 * `export-retry/otel` in Node: OpenTelemetry SDK exporters (traces, logs, metrics)
 * whose exports go through an export-retry exporter, so a failed batch is retried
 * and spooled to `storage` instead of lost.
 *
 *   provider = new BasicTracerProvider({
 *     spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ storage }))],
 *   });
 *
 * Each OTel exporter wraps one export-retry exporter, created on first use (its
 * `createExporter` is async: it recovers the spool). Options that can be checked
 * at once are checked by the constructor, which throws for a bad one.
 */
import { createExporter } from "./index.node.js";
import { buildEngine, requireMethods } from "./exporter.js";
import { defineExporters, prefixedStorage, retryOptions } from "./otel-core.js";

export { ExportResultCode, LOGFIRE_BASE_URLS, logfireBaseUrl } from "./otel-core.js";

const STORAGE_METHODS = ["get", "put", "delete", "list"];
const noScheduler = { schedule() {}, cancel() {} };
const unusedStorage = {
  storageGet() {}, storagePut() {}, storageDelete() {}, storageList: () => [],
};

const runtime = {
  env: () => process.env,
  build(config, options) {
    if (options.spool !== undefined) {
      throw new TypeError(
        "export-retry/otel: option `spool` (the SpoolObject binding) is for Cloudflare Workers; in Node pass `storage` (e.g. new FileStorage({ dir }))",
      );
    }
    const storage = requireMethods("storage", options.storage, STORAGE_METHODS,
      "use new FileStorage({ dir }) from export-retry/node, or new MemoryStorage()");
    const inner = { ...retryOptions(config), storage: prefixedStorage(storage, `${config.signal}-`) };
    // Check every export-retry option now (a throwaway engine, no I/O), so that a
    // bad or misspelt one throws from the constructor rather than failing exports.
    buildEngine(inner, { scheduler: noScheduler }, unusedStorage).free();
    return { open: () => createExporter(inner) };
  },
};

export const { OTLPTraceExporter, OTLPLogExporter, OTLPMetricExporter, logfire } = defineExporters(runtime);
