/**
 * `export-retry/otel` in Cloudflare Workers: the same OpenTelemetry exporters, whose
 * failed exports are handed to the `SpoolObject` Durable Object (option `spool`,
 * e.g. `env.EXPORT_SPOOL`) and drained from its alarm. They work as the `exporter`
 * of `@microlabs/otel-cf-workers` / `@pydantic/otel-cf-workers`:
 *
 *   export default instrument(handler, (env) => ({
 *     exporter: new OTLPTraceExporter({ spool: env.EXPORT_SPOOL, env }),
 *     service: { name: "my-worker" },
 *   }));
 *
 * The exporters send with the runtime's own `fetch`, taken when this module loads,
 * before otel-cf-workers wraps `globalThis.fetch`: an export must not trace itself.
 */
import { SpoolObject as RetrySpoolObject, createWorkersExporter } from "./workers.js";
import { createExporter } from "./index.workers.js";
import { checkEngineOptions, requireStorage } from "./exporter.js";
import { defineExporters, logfireBaseUrl, prefixedStorage, retryOptions } from "./otel-core.js";

export { ExportResultCode, LOGFIRE_BASE_URLS, logfireBaseUrl } from "./otel-core.js";

const runtimeFetch = globalThis.fetch;
const untracedFetch = (url, init) => runtimeFetch(url, init);

function nonEmpty(value) {
  return value === undefined || value === null || String(value).trim() === "" ? undefined : String(value).trim();
}

const runtime = {
  env: () => globalThis.process?.env ?? {},
  build(config, options) {
    const { spool, storage } = options;
    if (spool !== undefined && storage !== undefined) {
      throw new TypeError("export-retry/otel: give `spool` (the SpoolObject binding) or `storage`, not both");
    }
    const inner = { ...retryOptions(config), fetch: config.rest.fetch ?? untracedFetch };
    if (spool !== undefined) {
      // createWorkersExporter keeps the engine for the isolate's life (per binding
      // and options): otel-cf-workers builds its configuration per request.
      const exporter = createWorkersExporter(spool, inner);
      return { open: () => exporter, shared: true };
    }
    if (storage === undefined) {
      throw new TypeError(
        "export-retry/otel: option `spool` is required in Workers: the SpoolObject binding (e.g. env.EXPORT_SPOOL); or pass `storage`",
      );
    }
    requireStorage(storage, "new MemoryStorage(), or use `spool` for the Durable Object spool");
    const local = { ...inner, storage: prefixedStorage(storage, `${config.signal}-`) };
    checkEngineOptions(local); // a bad option throws from the constructor, not at the first export
    return { open: () => createExporter(local) };
  },
};

export const { OTLPTraceExporter, OTLPLogExporter, OTLPMetricExporter, logfire } = defineExporters(runtime);

/**
 * The spool Durable Object for OpenTelemetry exports. It drains with no request
 * arriving, so it takes its configuration from its own `env`, as export-retry's
 * `SpoolObject` does (OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
 * EXPORT_RETRY_OPTIONS), and also understands:
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` as the OTel base URL, or a signal's
 *   `OTEL_EXPORTER_OTLP_{TRACES,LOGS,METRICS}_ENDPOINT` when only that is set:
 *   configured headers go to that origin only;
 * - `LOGFIRE_TOKEN` (a secret): Logfire's endpoint for the token's region (or
 *   `LOGFIRE_BASE_URL`), with `Authorization` set to the token.
 * Records are sent to the URL their export had.
 */
export class SpoolObject extends RetrySpoolObject {
  exporterOptions(env) {
    const token = nonEmpty(env.LOGFIRE_TOKEN);
    const endpoint = token !== undefined
      ? nonEmpty(env.LOGFIRE_BASE_URL) ?? logfireBaseUrl(token)
      : nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        ?? nonEmpty(env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
        ?? "http://localhost:4318";
    const options = { ...super.exporterOptions({ ...env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }), fetch: untracedFetch };
    if (token !== undefined) options.headers = { ...options.headers, authorization: token };
    return options;
  }
}
