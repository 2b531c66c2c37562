/** A persistent key-value store for spooled records. Methods may be sync or async. */
export interface StorageAdapter {
  get(key: string): Promise<Uint8Array | undefined> | Uint8Array | undefined;
  /** Durable once it resolves. */
  put(key: string, value: Uint8Array): Promise<void> | void;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void> | void;
  /** Keys starting with `prefix`, sorted ascending. */
  list(prefix: string): Promise<string[]> | string[];
  /** Largest value `put` accepts; larger records are split into chunks. */
  readonly maxValueBytes?: number;
}

/** Where log lines go; `console` by default. */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

/** The host's wake-up: one pending wake at a time (a timer in Node, an alarm in Workers). */
export interface Scheduler {
  schedule(atMs: number, wake: () => unknown): void;
  cancel(): void;
}

export interface ExporterOptions {
  /** Absolute http(s) URL the payloads are POSTed to. */
  endpoint: string;
  /** Sent on every attempt to the endpoint's origin; never written to storage. */
  headers?: Record<string, string>;
  storage: StorageAdapter;
  /** Default: `globalThis.fetch`. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Abort one POST after this long. Default: `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), else 10000. */
  timeoutMs?: number;
  /** Wait before the single immediate retry. Default 1000. */
  immediateRetryDelayMs?: number;
  /** The drain's first backoff delay; doubles per failure. Default 1000. */
  initialDelayMs?: number;
  /** Cap on the backoff delay. Default 128000. */
  maxDelayMs?: number;
  /** Spool capacity in payload bytes. Default 536870912 (512 MiB). */
  maxSpoolBytes?: number;
  /** Each rate-limited log message at most once per interval. Default 60000. */
  logIntervalMs?: number;
  /** Records the drain sends at once while the backend is healthy. Default 4. */
  drainConcurrency?: number;
  /** Cap on an honoured Retry-After. Default 900000 (15 min). */
  maxRetryAfterMs?: number;
  /** Default: `console`, prefixed with `[export-retry]`. */
  logger?: Logger;
  /** Default: the runtime's (unref'd timers in Node). */
  scheduler?: Scheduler;
}

export interface ExportOptions {
  /** Default `application/x-protobuf`. */
  contentType?: string;
  /** The body's `Content-Encoding` (e.g. `gzip`); stored with a spooled record and sent with it. Default none. */
  contentEncoding?: string;
}

export interface ExportResult {
  outcome: "delivered" | "spooled" | "rejected" | "dropped";
  /** POST attempts made by this export (0 when it was not attempted). */
  attempts: number;
  /** Status of the last attempt that received one. */
  status?: number;
}

export interface ExporterStats {
  /** Records in the spool and their payload bytes. */
  queued: number;
  queuedBytes: number;
  /** Counters since this exporter was created. */
  delivered: number;
  spooled: number;
  rejected: number;
  dropped: number;
  corrupt: number;
  /** Spooled records being sent now. */
  inFlight: number;
  /** Records the current (or last) drain pass sent. */
  passSends: number;
  /** When the drain may next send after a failure (ms since the epoch), or null. */
  nextAttemptAt: number | null;
  /** The backoff delay the next failure will wait (before jitter). */
  delayMs: number;
}

export interface RetryExporter extends AsyncDisposable {
  /** Never rejects for a failed export; throws a TypeError at once for a bad argument. */
  export(body: Uint8Array, options?: ExportOptions): Promise<ExportResult>;
  stats(): ExporterStats;
  /** One drain pass over what is due now. */
  drain(): Promise<void>;
  /** Settles the exports under way. */
  forceFlush(): Promise<void>;
  /** Stops wake-ups and settles exports under way; later exports are dropped. */
  shutdown(): Promise<void>;
}

/** Creates an exporter and recovers the backlog its storage holds. Rejects for bad options. */
export function createExporter(options: ExporterOptions): Promise<RetryExporter>;

/** Storage in memory: for tests, and for runtimes where losing the spool on restart is acceptable. */
export class MemoryStorage implements StorageAdapter {
  constructor(options?: { maxValueBytes?: number });
  readonly maxValueBytes?: number;
  readonly size: number;
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  list(prefix: string): Promise<string[]>;
}
