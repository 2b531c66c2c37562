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
import { checkEngineOptions, requireStorage } from "./exporter.js";
import { defineExporters, prefixedStorage, retryOptions } from "./otel-core.js";

export { ExportResultCode, LOGFIRE_BASE_URLS, logfireBaseUrl } from "./otel-core.js";

const runtime = {
  env: () => process.env,
  build(config, options) {
    if (options.spool !== undefined) {
      throw new TypeError(
        "export-retry/otel: option `spool` (the SpoolObject binding) is for Cloudflare Workers; in Node pass `storage` (e.g. new FileStorage({ dir }))",
      );
    }
    const storage = requireStorage(options.storage);
    const inner = { ...retryOptions(config), storage: prefixedStorage(storage, `${config.signal}-`) };
    checkEngineOptions(inner); // a bad option throws from the constructor, not at the first export
    return { open: () => createExporter(inner) };
  },
};

export const { OTLPTraceExporter, OTLPLogExporter, OTLPMetricExporter, logfire } = defineExporters(runtime);
