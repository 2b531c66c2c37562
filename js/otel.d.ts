/**
 * `export-retry/otel`: OpenTelemetry SDK exporters (traces, logs, metrics) whose
 * batches go through export-retry, so a batch that cannot be delivered is retried
 * and spooled instead of lost. Node: `storage`; Workers: `spool` (the SpoolObject
 * binding). Serialization: `@opentelemetry/otlp-transformer`.
 *
 * The SDK types are written structurally (batches are `unknown`), so this file needs
 * none of the SDK packages; the classes satisfy `SpanExporter`
 * (`@opentelemetry/sdk-trace-base`), `LogRecordExporter` (`@opentelemetry/sdk-logs`)
 * and `PushMetricExporter` (`@opentelemetry/sdk-metrics`).
 */
import type { ExportResult } from "@opentelemetry/core";
import type { ExporterOptions, RetryExporter, StorageAdapter } from "./index.js";
import type { SpoolObject as RetrySpoolObject, WorkersExporter } from "./workers.js";

export { ExportResultCode } from "@opentelemetry/core";
export type { ExportResult } from "@opentelemetry/core";

/** Where the configuration comes from when an option is not given. */
export type OtlpEnv = Record<string, unknown>;

export interface OtlpExporterOptions
  extends Omit<ExporterOptions, "endpoint" | "headers" | "storage" | "timeoutMs"> {
  /**
   * The full URL of this signal's endpoint. Default: `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`,
   * else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/<signal>`, else `http://localhost:4318/v1/<signal>`.
   */
  url?: string;
  /** The same as `url` (export-retry's name for it); give one of them. */
  endpoint?: string;
  /**
   * Merged over `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`
   * (names are case-insensitive). Sent to the endpoint's origin only; never stored.
   */
  headers?: Record<string, string>;
  /** Per attempt. Default: `OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10000. */
  timeoutMs?: number;
  /** The same as `timeoutMs` (OpenTelemetry JS's name for it); give one of them. */
  timeoutMillis?: number;
  /** Default: `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`. `grpc` is not supported. */
  protocol?: "http/protobuf" | "http/json";
  /** Default: `OTEL_EXPORTER_OTLP_<SIGNAL>_COMPRESSION`, `OTEL_EXPORTER_OTLP_COMPRESSION`, else `none`. gzip uses `CompressionStream`. */
  compression?: "gzip" | "none";
  /** The variables to read. Default: `process.env` (in Workers: pass the Worker's `env`). */
  env?: OtlpEnv;
  /** Node (and Workers without the Durable Object): where failed batches are spooled. Keys get a `<signal>-` prefix. */
  storage?: StorageAdapter;
  /** Workers: the SpoolObject binding (e.g. `env.EXPORT_SPOOL`); failed batches go to the Durable Object. */
  spool?: DurableObjectNamespace;
  /** Spread spooled batches over this many spool objects (Workers, with `spool`). Default 1. */
  shards?: number;
  /** How long `forceFlush()` and `shutdown()` wait for the exports under way. Default 30000. */
  flushTimeoutMs?: number;
}

export interface OtlpMetricExporterOptions extends OtlpExporterOptions {
  /** Default: `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`, else `cumulative`. */
  temporalityPreference?: "cumulative" | "delta" | "lowmemory";
}

declare abstract class OtlpExporterBase {
  /**
   * Sends one batch. The callback gets SUCCESS once it is delivered or durably
   * spooled; FAILED with the reason when it was rejected (a non-retryable status:
   * `error.status`) or dropped (spool full, storage failed, shut down).
   */
  export(items: unknown, resultCallback: (result: ExportResult) => void): void;
  /** Waits until the exports under way are delivered, spooled, rejected or dropped; rejects after `flushTimeoutMs`. */
  forceFlush(): Promise<void>;
  /** Refuses new exports, settles those under way, stops wake-ups. Never keeps a process alive. */
  shutdown(): Promise<void>;
  /** The export-retry exporter underneath, created on first use (Workers: with `spoolStats()`). */
  retryExporter(): Promise<RetryExporter | WorkersExporter>;
}

/** `SpanExporter` of `@opentelemetry/sdk-trace-base` 2.x (1.x spans are accepted too). */
export class OTLPTraceExporter extends OtlpExporterBase {
  /** Throws a TypeError or RangeError naming the option or variable for a bad one. */
  constructor(options?: OtlpExporterOptions);
}

/** `LogRecordExporter` of `@opentelemetry/sdk-logs`. */
export class OTLPLogExporter extends OtlpExporterBase {
  constructor(options?: OtlpExporterOptions);
}

/** Push `PushMetricExporter` of `@opentelemetry/sdk-metrics`. */
export class OTLPMetricExporter extends OtlpExporterBase {
  constructor(options?: OtlpMetricExporterOptions);
  /** `AggregationTemporality`: 0 (DELTA) or 1 (CUMULATIVE), per `temporalityPreference`. */
  selectAggregationTemporality(instrumentType: string): 0 | 1;
}

export interface LogfireOptions extends Omit<OtlpMetricExporterOptions, "url" | "endpoint"> {
  /** A Logfire write token (`pylf_v1_<region>_...`). Default: `LOGFIRE_TOKEN`. Sent as `Authorization`; never logged. */
  token?: string;
  /** Overrides the region's URL. Default: `LOGFIRE_BASE_URL`, else from the token's region (US when unknown). */
  baseUrl?: string;
}

export interface LogfireExporters {
  traceExporter: OTLPTraceExporter;
  logExporter: OTLPLogExporter;
  /** Delta temporality unless configured otherwise, as the Logfire SDKs send. */
  metricExporter: OTLPMetricExporter;
}

/** Exporters for Logfire's API: `<base>/v1/traces`, `/v1/logs`, `/v1/metrics`, Authorization set to the token. */
export function logfire(options?: LogfireOptions): LogfireExporters;

/** Logfire's regional base URLs. */
export const LOGFIRE_BASE_URLS: Readonly<{ us: "https://logfire-us.pydantic.dev"; eu: "https://logfire-eu.pydantic.dev" }>;

/** The base URL of a token's region; US when the token names no known region. */
export function logfireBaseUrl(token: string): string;

/**
 * Workers only: export-retry's SpoolObject that also reads `OTEL_EXPORTER_OTLP_ENDPOINT`
 * as an OTel base URL (or a signal's endpoint when only that is set) and, with
 * `LOGFIRE_TOKEN` in its env, sends to Logfire (`LOGFIRE_BASE_URL` or the token's
 * region) with the token as `Authorization`.
 */
export class SpoolObject extends RetrySpoolObject {}
