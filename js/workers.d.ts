import type { ExporterOptions, ExporterStats, RetryExporter, StorageAdapter } from "./index.js";
import type { DurableObject } from "cloudflare:workers";

export * from "./index.js";

/** Records sent per alarm run by default (the free plan allows 50 subrequests). */
export const DEFAULT_DRAIN_BUDGET: 40;

export interface WorkersExporterOptions extends Omit<ExporterOptions, "storage" | "scheduler"> {
  /** Spread spooled records over this many spool objects (default 1). */
  shards?: number;
}

export interface SpoolStats extends ExporterStats {
  /** The object's next alarm (ms since the epoch), or null. */
  nextAlarm: number | null;
  /** The last alarm runs (at most 100): when, how long, how many records sent. */
  alarms: { at: number; ms: number; sends: number }[];
}

export interface WorkersExporter extends RetryExporter {
  /** Each spool object's figures, shard by shard. */
  spoolStats(): Promise<SpoolStats[]>;
}

/** The exporter for a Worker's request path; failed exports go to `SpoolObject` by RPC. */
export function createWorkersExporter(namespace: DurableObjectNamespace, options: WorkersExporterOptions): WorkersExporter;

/**
 * Options from a Worker's environment: OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT and EXPORT_RETRY_OPTIONS (JSON).
 */
export function optionsFromEnv(env: Record<string, unknown>): WorkersExporterOptions & { endpoint: string };

/** The spool Durable Object: bind it and export it from your Worker. */
export class SpoolObject extends DurableObject {
  /** Override to configure the object otherwise than from its env. */
  exporterOptions(env: unknown): Omit<ExporterOptions, "storage" | "scheduler">;
  spool(body: Uint8Array, options: { contentType?: string; contentEncoding?: string; url?: string }): Promise<{ outcome: "spooled" | "dropped" }>;
  backendRecovered(): Promise<void>;
  stats(): Promise<SpoolStats>;
  alarm(): Promise<void>;
}

/** Storage adapter over a SQLite-backed Durable Object's SQL API. */
export class DurableObjectSqlStorage implements StorageAdapter {
  constructor(storage: DurableObjectStorage, options?: { maxValueBytes?: number });
  readonly maxValueBytes: number;
  get(key: string): Uint8Array | undefined;
  put(key: string, value: Uint8Array): void;
  delete(key: string): void;
  list(prefix: string): string[];
}
