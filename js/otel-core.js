/**
 * The runtime-neutral part of `export-retry/otel`: OpenTelemetry SDK exporters
 * (traces, logs, metrics) that serialize with `@opentelemetry/otlp-transformer`,
 * optionally gzip with the runtime's `CompressionStream`, and hand the bytes to one
 * export-retry exporter. Configuration follows the OpenTelemetry exporter spec
 * (explicit options, then `OTEL_EXPORTER_OTLP_*` variables). No retry decision is
 * made here: delivery, retries and the spool are the export-retry engine's.
 *
 * The entries `otel.js` (Node) and `otel-workers.js` (Workers) supply the runtime:
 * how to build the export-retry exporter from the resolved options.
 */
import { ExportResultCode } from "@opentelemetry/core";
import {
  JsonLogsSerializer,
  JsonMetricsSerializer,
  JsonTraceSerializer,
  ProtobufLogsSerializer,
  ProtobufMetricsSerializer,
  ProtobufTraceSerializer,
} from "@opentelemetry/otlp-transformer";
import { parseOtlpHeaders, parseOtlpTimeout } from "../pkg/export_retry.js";

export { ExportResultCode };

const PREFIX = "export-retry/otel";
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_FLUSH_TIMEOUT_MS = 30_000;
const DEFAULT_BASE = "http://localhost:4318";

const SIGNALS = {
  traces: { env: "TRACES", protobuf: ProtobufTraceSerializer, json: JsonTraceSerializer },
  logs: { env: "LOGS", protobuf: ProtobufLogsSerializer, json: JsonLogsSerializer },
  metrics: { env: "METRICS", protobuf: ProtobufMetricsSerializer, json: JsonMetricsSerializer },
};

const CONTENT_TYPES = { "http/protobuf": "application/x-protobuf", "http/json": "application/json" };
const COMPRESSIONS = ["gzip", "none"];

/** Options of this module, not passed on to export-retry. */
const OWN_OPTIONS = [
  "url", "endpoint", "headers", "timeoutMs", "timeoutMillis", "protocol", "compression", "env",
  "storage", "spool", "flushTimeoutMs", "temporalityPreference",
];

/** `AggregationTemporality` of `@opentelemetry/sdk-metrics`. */
const DELTA = 0;
const CUMULATIVE = 1;
/** Instrument types that a `delta` / `lowmemory` preference reports as deltas (OTLP exporter spec). */
const TEMPORALITY = {
  cumulative: new Set(),
  delta: new Set(["COUNTER", "OBSERVABLE_COUNTER", "HISTOGRAM", "GAUGE", "OBSERVABLE_GAUGE"]),
  lowmemory: new Set(["COUNTER", "HISTOGRAM"]),
};

const TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";

/** Logfire's regions; a token names its region (`pylf_v1_<region>_...`). Unknown: US. */
export const LOGFIRE_BASE_URLS = Object.freeze({
  us: "https://logfire-us.pydantic.dev",
  eu: "https://logfire-eu.pydantic.dev",
});
const LOGFIRE_TOKEN_RE = /^pylf_v\d+_([a-z]+)_/;

/**
 * The Logfire base URL for a write token: its region's, US when the token names
 * no known region. Never includes the token in an error message.
 */
export function logfireBaseUrl(token) {
  if (typeof token !== "string" || token === "") {
    throw new TypeError(`${PREFIX}: a Logfire token must be a non-empty string`);
  }
  const region = LOGFIRE_TOKEN_RE.exec(token)?.[1];
  return Object.hasOwn(LOGFIRE_BASE_URLS, region ?? "") ? LOGFIRE_BASE_URLS[region] : LOGFIRE_BASE_URLS.us;
}

/** A variable's value: unset when missing or empty (as the spec says), else the trimmed string. */
function envValue(env, name) {
  const raw = env?.[name];
  if (raw === undefined || raw === null) return undefined;
  const value = String(raw).trim();
  return value === "" ? undefined : value;
}

function checkUrl(raw, what) {
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`${PREFIX}: ${what} must be an absolute http(s) URL, got ${JSON.stringify(String(raw))}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`${PREFIX}: ${what} must be an http(s) URL, got ${JSON.stringify(String(raw))}`);
  }
  return String(raw);
}

/** `base` + `/v1/<signal>`, with exactly one slash between them. */
function appendSignalPath(base, signal) {
  return `${base.replace(/\/+$/, "")}/v1/${signal}`;
}

function oneOf(options, names) {
  const given = names.filter((n) => options[n] !== undefined);
  if (given.length > 1) {
    throw new TypeError(`${PREFIX}: options ${given.map((n) => `\`${n}\``).join(" and ")} mean the same; give one`);
  }
  return given.length === 1 ? { name: given[0], value: options[given[0]] } : undefined;
}

function lowerCaseHeaders(headers, what) {
  if (headers === undefined) return {};
  if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {
    throw new TypeError(`${PREFIX}: ${what} must be an object of header names to string values`);
  }
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== "string") {
      throw new TypeError(`${PREFIX}: ${what} value of ${JSON.stringify(name)} must be a string, got ${typeof value}`);
    }
    out[name.toLowerCase()] = value;
  }
  return out;
}

/**
 * Resolves the exporter configuration of one signal: explicit options first, then
 * `OTEL_EXPORTER_OTLP_<SIGNAL>_*`, then `OTEL_EXPORTER_OTLP_*`, then the spec's
 * defaults. Throws a TypeError or RangeError naming the option or variable.
 * @returns {{ endpoint: string, headers: Record<string,string>, timeoutMs: number,
 *   protocol: string, contentType: string, compression: string, flushTimeoutMs: number,
 *   temporalityPreference?: string, rest: object }}
 */
export function resolveConfig(signal, options, defaultEnv) {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`${PREFIX}: options must be an object`);
  }
  const env = options.env ?? defaultEnv ?? {};
  if (env === null || typeof env !== "object") {
    throw new TypeError(`${PREFIX}: option \`env\` must be an object of environment variables`);
  }
  const S = SIGNALS[signal].env;
  const specific = (name) => `OTEL_EXPORTER_OTLP_${S}_${name}`;
  const generic = (name) => `OTEL_EXPORTER_OTLP_${name}`;
  /** The first set variable of the signal-specific and generic pair, with its name. */
  const fromEnv = (name) => {
    for (const variable of [specific(name), generic(name)]) {
      const value = envValue(env, variable);
      if (value !== undefined) return { variable, value };
    }
    return undefined;
  };

  // Endpoint: an explicit URL or the signal's variable is used as is; the generic
  // variable is a base to which /v1/<signal> is appended.
  let endpoint;
  const explicitUrl = oneOf(options, ["url", "endpoint"]);
  if (explicitUrl) {
    endpoint = checkUrl(explicitUrl.value, `option \`${explicitUrl.name}\``);
  } else if (envValue(env, specific("ENDPOINT")) !== undefined) {
    endpoint = checkUrl(envValue(env, specific("ENDPOINT")), specific("ENDPOINT"));
  } else if (envValue(env, generic("ENDPOINT")) !== undefined) {
    endpoint = appendSignalPath(checkUrl(envValue(env, generic("ENDPOINT")), generic("ENDPOINT")), signal);
  } else {
    endpoint = appendSignalPath(DEFAULT_BASE, signal);
  }

  // Headers: the generic list, then the signal's, then the explicit ones win.
  const headers = {};
  for (const variable of [generic("HEADERS"), specific("HEADERS")]) {
    const raw = envValue(env, variable);
    if (raw !== undefined) Object.assign(headers, lowerCaseHeaders(parseOtlpHeaders(raw, variable), variable));
  }
  Object.assign(headers, lowerCaseHeaders(options.headers, "option `headers`"));

  // Timeout (ms): explicit (export-retry's `timeoutMs` or OTel JS's `timeoutMillis`), else env, else 10 s.
  let timeoutMs;
  const explicitTimeout = oneOf(options, ["timeoutMs", "timeoutMillis"]);
  if (explicitTimeout) {
    timeoutMs = explicitTimeout.value; // validated by export-retry, which names `timeoutMs`
  } else {
    const found = fromEnv("TIMEOUT");
    if (found) {
      timeoutMs = parseOtlpTimeout(found.value, found.variable);
    } else {
      timeoutMs = DEFAULT_TIMEOUT_MS;
    }
  }

  const protocol = pick(options.protocol, "option `protocol`", fromEnv("PROTOCOL"), "http/protobuf", Object.keys(CONTENT_TYPES),
    (value, what) => (value === "grpc"
      ? `${PREFIX}: ${what} "grpc" is not supported: export-retry sends OTLP over HTTP; use http/protobuf or http/json`
      : undefined));
  const compression = pick(options.compression, "option `compression`", fromEnv("COMPRESSION"), "none", COMPRESSIONS);

  let temporalityPreference;
  if (signal === "metrics") {
    const variable = TEMPORALITY_VARIABLE;
    const raw = envValue(env, variable);
    temporalityPreference = pick(options.temporalityPreference, "option `temporalityPreference`",
      raw === undefined ? undefined : { variable, value: raw.toLowerCase() }, "cumulative", Object.keys(TEMPORALITY));
  } else if (options.temporalityPreference !== undefined) {
    throw new TypeError(`${PREFIX}: option \`temporalityPreference\` is for the metric exporter`);
  }

  const flushTimeoutMs = options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS;
  if (!Number.isInteger(flushTimeoutMs) || flushTimeoutMs < 0) {
    throw new RangeError(`${PREFIX}: option \`flushTimeoutMs\` must be a whole number of milliseconds, got ${flushTimeoutMs}`);
  }

  const rest = {};
  for (const [key, value] of Object.entries(options)) if (!OWN_OPTIONS.includes(key)) rest[key] = value;
  return {
    signal, endpoint, headers, timeoutMs, protocol, contentType: CONTENT_TYPES[protocol], compression,
    flushTimeoutMs, temporalityPreference, rest,
  };
}

/** An explicit option, else a variable, else the default; checked against `allowed`. */
function pick(explicit, option, found, fallback, allowed, explain = () => undefined) {
  const [value, what] = explicit !== undefined ? [explicit, option] : found ? [found.value, found.variable] : [fallback, "default"];
  if (typeof value !== "string" || !allowed.includes(value)) {
    throw new TypeError(explain(value, what) ?? `${PREFIX}: ${what} must be one of ${allowed.join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * A span of `@opentelemetry/sdk-trace-base` 1.x (what `@microlabs/otel-cf-workers`
 * 0.9 produces) in the 2.x shape the serializer reads: `instrumentationScope` for
 * `instrumentationLibrary`, `parentSpanContext` for `parentSpanId`. 2.x spans pass
 * unchanged.
 */
function currentSpanShape(span) {
  if (span === null || typeof span !== "object" || span.instrumentationScope !== undefined
    || span.instrumentationLibrary === undefined) {
    return span;
  }
  const context = span.spanContext();
  const parentSpanContext = span.parentSpanContext
    ?? (span.parentSpanId ? { traceId: context.traceId, spanId: span.parentSpanId, traceFlags: context.traceFlags } : undefined);
  return Object.create(span, {
    instrumentationScope: { value: span.instrumentationLibrary },
    parentSpanContext: { value: parentSpanContext },
  });
}

/** gzip with the runtime's CompressionStream (Node >= 18 and workerd have it). */
async function gzip(bytes) {
  if (typeof CompressionStream !== "function") {
    throw new TypeError(`${PREFIX}: compression "gzip" needs CompressionStream, which this runtime lacks`);
  }
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function unrefTimer(timer) {
  if (typeof timer === "object" && typeof timer?.unref === "function") timer.unref();
  return timer;
}

/** The error an export that was not delivered or spooled reports. */
function outcomeError(result) {
  if (result.outcome === "rejected") {
    const status = result.status === undefined ? "" : ` with status ${result.status}`;
    const err = new Error(`${PREFIX}: the backend rejected the export${status}; it is not retried`);
    err.status = result.status;
    err.outcome = result.outcome;
    return err;
  }
  const err = new Error(`${PREFIX}: the export was dropped (the spool is full, its storage failed, or the exporter is shut down)`);
  err.outcome = result.outcome;
  return err;
}

/**
 * The exporter classes for one runtime. `runtime` supplies:
 * - `env()`: the default environment (process.env in Node);
 * - `build(config, options)`: checks what can be checked at once (throws) and
 *   returns `{ open: () => RetryExporter | Promise<RetryExporter>, shared?: boolean }`.
 *   `shared` exporters (isolate-cached in Workers) are flushed, never shut down.
 */
export function defineExporters(runtime) {
  /** Each exporter's resolved configuration (the metric exporter reads its temporality here). */
  const configs = new WeakMap();

  class OtlpExporter {
    #signal;
    #config;
    #open;
    #shared;
    /** @type {Promise<object> | undefined} */
    #inner;
    #pending = new Set();
    #shutdown;

    constructor(signal, options = {}) {
      this.#signal = signal;
      this.#config = resolveConfig(signal, options, runtime.env());
      configs.set(this, this.#config);
      const built = runtime.build(this.#config, options);
      this.#open = built.open;
      this.#shared = built.shared === true;
    }

    /**
     * The export-retry exporter underneath (created on first use): its `stats()`,
     * and in Workers its `spoolStats()`.
     */
    retryExporter() {
      if (this.#inner === undefined) {
        const inner = Promise.resolve().then(() => this.#open());
        this.#inner = inner;
        inner.catch(() => {
          if (this.#inner === inner) this.#inner = undefined; // try again on the next call
        });
      }
      return this.#inner;
    }

    /**
     * Sends one batch. The callback gets SUCCESS once it is delivered or durably
     * spooled, FAILED (with the reason) when it was rejected or dropped.
     */
    export(items, resultCallback) {
      const done = (result) => {
        try {
          resultCallback(result);
        } catch (err) {
          this.#logError(`an export result callback threw: ${err?.stack ?? err}`);
        }
      };
      if (this.#shutdown) {
        done({ code: ExportResultCode.FAILED, error: new Error(`${PREFIX}: the exporter is shut down`) });
        return;
      }
      const task = this.#send(items).then(done, (error) => done({ code: ExportResultCode.FAILED, error }));
      this.#pending.add(task);
      task.then(() => this.#pending.delete(task));
    }

    async #send(items) {
      if (Array.isArray(items) && items.length === 0) return { code: ExportResultCode.SUCCESS };
      // Serialized at once, in the SDK's call.
      const { protocol, contentType, compression } = this.#config;
      const request = this.#signal === "traces" && Array.isArray(items) ? items.map(currentSpanShape) : items;
      let body = SIGNALS[this.#signal][protocol === "http/json" ? "json" : "protobuf"].serializeRequest(request);
      if (!(body instanceof Uint8Array)) {
        throw new Error(`${PREFIX}: @opentelemetry/otlp-transformer could not serialize the ${this.#signal}`);
      }
      if (compression === "gzip") body = await gzip(body);
      const inner = await this.retryExporter();
      // The encoding goes with the body: a spooled record keeps it whatever a later
      // process configures.
      const result = await inner.export(body, compression === "gzip" ? { contentType, contentEncoding: "gzip" } : { contentType });
      return result.outcome === "delivered" || result.outcome === "spooled"
        ? { code: ExportResultCode.SUCCESS }
        : { code: ExportResultCode.FAILED, error: outcomeError(result) };
    }

    /** To the configured logger (export-retry's `logger` option), else the console. */
    #logError(message) {
      const logger = this.#config.rest.logger;
      if (typeof logger?.error === "function") logger.error(message);
      else console.error(`[${PREFIX}] ${message}`);
    }

    /** Resolves once the exports under way have settled; rejects after `flushTimeoutMs`. */
    #settle(what) {
      if (this.#pending.size === 0) return Promise.resolve();
      const ms = this.#config.flushTimeoutMs;
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = unrefTimer(setTimeout(() => reject(new Error(
          `${PREFIX}: ${what} timed out after ${ms} ms with ${this.#pending.size} export(s) still under way`,
        )), ms));
      });
      return Promise.race([Promise.all([...this.#pending]), timeout]).finally(() => clearTimeout(timer));
    }

    /** Waits until the exports under way are delivered, spooled, rejected or dropped (within `flushTimeoutMs`). */
    async forceFlush() {
      await this.#settle("forceFlush");
      if (this.#inner !== undefined) {
        const inner = await this.#inner.catch(() => undefined);
        await inner?.forceFlush();
      }
    }

    /**
     * Refuses new exports, settles those under way (within `flushTimeoutMs`), and
     * stops the export-retry exporter's wake-ups. Never keeps a process alive.
     */
    shutdown() {
      this.#shutdown ??= (async () => {
        await this.#settle("shutdown").catch((err) => this.#logError(err.message));
        if (this.#inner === undefined) return;
        const inner = await this.#inner.catch(() => undefined);
        await (this.#shared ? inner?.forceFlush() : inner?.shutdown());
      })();
      return this.#shutdown;
    }
  }

  /** The `SpanExporter` of `@opentelemetry/sdk-trace-base` 2.x. */
  class OTLPTraceExporter extends OtlpExporter {
    constructor(options = {}) {
      super("traces", options);
    }
  }

  /** The `LogRecordExporter` of `@opentelemetry/sdk-logs`. */
  class OTLPLogExporter extends OtlpExporter {
    constructor(options = {}) {
      super("logs", options);
    }
  }

  /** The `PushMetricExporter` of `@opentelemetry/sdk-metrics`. */
  class OTLPMetricExporter extends OtlpExporter {
    constructor(options = {}) {
      super("metrics", options);
    }

    /** DELTA or CUMULATIVE per `temporalityPreference` (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE). */
    selectAggregationTemporality(instrumentType) {
      return TEMPORALITY[configs.get(this).temporalityPreference].has(instrumentType) ? DELTA : CUMULATIVE;
    }
  }

  /**
   * Exporters for Logfire: the region's endpoint from the token, `Authorization`
   * set to the token. `baseUrl` (or LOGFIRE_BASE_URL) overrides the region.
   */
  function logfire(options = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(`${PREFIX}: logfire(options): options must be an object`);
    }
    const { token: explicitToken, baseUrl: explicitBase, temporalityPreference: explicitTemporality, ...rest } = options;
    const env = options.env ?? runtime.env() ?? {};
    const token = explicitToken ?? envValue(env, "LOGFIRE_TOKEN");
    if (typeof token !== "string" || token.trim() === "") {
      throw new TypeError(`${PREFIX}: logfire(): option \`token\` (a Logfire write token) is required, or LOGFIRE_TOKEN in the environment`);
    }
    if (rest.url !== undefined || rest.endpoint !== undefined) {
      throw new TypeError(`${PREFIX}: logfire(): the endpoints follow from the token; use \`baseUrl\` to point elsewhere`);
    }
    const envBase = envValue(env, "LOGFIRE_BASE_URL");
    const base = explicitBase !== undefined ? checkUrl(explicitBase, "logfire() option `baseUrl`")
      : envBase !== undefined ? checkUrl(envBase, "LOGFIRE_BASE_URL")
        : logfireBaseUrl(token.trim());
    const headers = { ...lowerCaseHeaders(rest.headers, "logfire() option `headers`"), authorization: token.trim() };
    const common = { ...rest, headers };
    return {
      traceExporter: new OTLPTraceExporter({ ...common, url: appendSignalPath(base, "traces") }),
      logExporter: new OTLPLogExporter({ ...common, url: appendSignalPath(base, "logs") }),
      // Deltas unless configured otherwise, as the Logfire SDKs send metrics.
      metricExporter: new OTLPMetricExporter({
        ...common,
        temporalityPreference: explicitTemporality ?? (envValue(env, TEMPORALITY_VARIABLE) === undefined ? "delta" : undefined),
        url: appendSignalPath(base, "metrics"),
      }),
    };
  }

  return { OTLPTraceExporter, OTLPLogExporter, OTLPMetricExporter, logfire };
}

/**
 * The export-retry options of a resolved configuration: the endpoint, headers and
 * timeout it resolved, plus every option this module does not itself take.
 */
export function retryOptions(config) {
  return { ...config.rest, endpoint: config.endpoint, headers: config.headers, timeoutMs: config.timeoutMs };
}

/**
 * A view of `storage` whose keys carry `prefix`, so that the three signals'
 * exporters can share one storage without draining each other's records.
 */
export function prefixedStorage(storage, prefix) {
  return {
    get: (key) => storage.get(prefix + key),
    put: (key, value) => storage.put(prefix + key, value),
    delete: (key) => storage.delete(prefix + key),
    list: async (p) => (await storage.list(prefix + p)).map((key) => key.slice(prefix.length)),
    get maxValueBytes() {
      return storage.maxValueBytes;
    },
  };
}
