/**
 * `export-retry/workers`: the Cloudflare Workers host.
 *
 * In the request isolate, `createWorkersExporter()` makes the first attempt and the
 * immediate retry; a payload that still fails is handed by RPC to a `SpoolObject`
 * Durable Object, and the export resolves `spooled` once the object has stored it.
 * The object keeps records in its SQLite storage and drains them from `alarm()`
 * with the same wasm engine, within a subrequest budget per alarm.
 */
import { DurableObject } from "cloudflare:workers";
import "./wasm.workers.js";
import { parseOtlpHeaders, parseOtlpTimeout } from "../pkg/export_retry.js";
import { buildEngine, noScheduler, openEngine, RetryExporter } from "./exporter.js";
import { DurableObjectSqlStorage } from "./durable-object-storage.js";

export { DurableObjectSqlStorage };

/** Sends per alarm run by default: fits the free plan's 50 subrequests per invocation. */
export const DEFAULT_DRAIN_BUDGET = 40;

let nextShard; // round-robin start, drawn on first use (no randomness at module top level)

/**
 * The exporter for a Worker's request path.
 * @param {DurableObjectNamespace} namespace the binding of `SpoolObject` (e.g. `env.EXPORT_SPOOL`)
 * @param {object} options `endpoint`, `headers`, and the options of `createExporter` except
 *   `storage`; `shards` (default 1) spreads spooled records over that many objects.
 */
export function createWorkersExporter(namespace, options) {
  if (typeof namespace?.idFromName !== "function" || typeof namespace?.get !== "function") {
    throw new TypeError(
      "createWorkersExporter(namespace, options): namespace must be the Durable Object binding of SpoolObject (env.EXPORT_SPOOL)",
    );
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError("createWorkersExporter(namespace, options): options must be an object");
  }
  if (options.storage !== undefined) {
    throw new TypeError("export-retry: option `storage` is not used in Workers: the spool is the SpoolObject Durable Object");
  }
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > 1024) {
    throw new RangeError(`export-retry: option \`shards\` must be a whole number from 1 to 1024, got ${shards}`);
  }
  const key = cacheKey(options);
  const cached = engines.get(namespace)?.get(key);
  const stub = (i) => namespace.get(namespace.idFromName(`export-retry-spool-${i}`));
  const engine = cached ?? buildEngine(options, { scheduler: noScheduler }, {
    async handoff(body, options) {
      nextShard ??= Math.floor(Math.random() * shards);
      const shard = nextShard++ % shards;
      const { outcome } = await stub(shard).spool(body, options);
      return outcome;
    },
    recovered: () => Promise.all(Array.from({ length: shards }, (_, i) => stub(i).backendRecovered())),
  });
  if (!cached) {
    if (!engines.has(namespace)) engines.set(namespace, new Map());
    engines.get(namespace).set(key, engine);
  }
  return new WorkersExporter(engine, shards, stub);
}

/**
 * Engines kept for the isolate's life, per binding and options, so that
 * consecutive requests share what the engine learnt (a backend that is failing:
 * the next export is a single probe, and a delivered probe tells the spool
 * objects to drain now). Functions and non-plain objects in the options (a custom
 * `fetch` or `logger`) count by identity.
 */
const engines = new WeakMap();
const identities = new WeakMap();
let nextIdentity = 0;

function cacheKey(options) {
  const part = (value) => {
    if (typeof value !== "function" && (value === null || typeof value !== "object")) return value;
    const plain = typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype
      && Object.values(value).every((v) => typeof v === "string");
    if (plain) return Object.entries(value).sort();
    if (!identities.has(value)) identities.set(value, ++nextIdentity);
    return `#${identities.get(value)}`;
  };
  return JSON.stringify(Object.keys(options).sort().map((key) => [key, part(options[key])]));
}

/** The request-path exporter, plus the spool objects' figures. */
class WorkersExporter extends RetryExporter {
  #shards;
  #stub;

  constructor(engine, shards, stub) {
    super(engine);
    this.#shards = shards;
    this.#stub = stub;
  }

  /** Each spool object's `stats()` (as in Node, plus `nextAlarm` and recent alarm runs). */
  spoolStats() {
    return Promise.all(Array.from({ length: this.#shards }, (_, i) => this.#stub(i).stats()));
  }
}

/**
 * The endpoint, headers and options a `SpoolObject` (and the example Worker) take
 * from the environment: `OTEL_EXPORTER_OTLP_ENDPOINT` (the full URL records are
 * sent to), `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`, percent-encoded; set it
 * as a secret), `OTEL_EXPORTER_OTLP_TIMEOUT` (ms), and `EXPORT_RETRY_OPTIONS`, a
 * JSON object of further numeric options (e.g. `{"drainBudget": 40}`).
 */
export function optionsFromEnv(env) {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (typeof endpoint !== "string" || endpoint === "") {
    throw new TypeError("export-retry: OTEL_EXPORTER_OTLP_ENDPOINT is not set in the Worker's environment");
  }
  let extra = {};
  if (env.EXPORT_RETRY_OPTIONS !== undefined && env.EXPORT_RETRY_OPTIONS !== "") {
    try {
      extra = typeof env.EXPORT_RETRY_OPTIONS === "string" ? JSON.parse(env.EXPORT_RETRY_OPTIONS) : env.EXPORT_RETRY_OPTIONS;
    } catch (err) {
      throw new TypeError(`export-retry: EXPORT_RETRY_OPTIONS is not valid JSON (${err.message})`);
    }
  }
  const options = { ...extra, endpoint };
  if (env.OTEL_EXPORTER_OTLP_HEADERS) {
    options.headers = parseOtlpHeaders(env.OTEL_EXPORTER_OTLP_HEADERS, "OTEL_EXPORTER_OTLP_HEADERS");
  }
  if (env.OTEL_EXPORTER_OTLP_TIMEOUT && options.timeoutMs === undefined) {
    options.timeoutMs = parseOtlpTimeout(String(env.OTEL_EXPORTER_OTLP_TIMEOUT));
  }
  return options;
}

/**
 * The spool: a Durable Object that stores failed exports and drains them from its
 * alarm. It has no fetch handler: only RPC through its binding reaches it.
 * Configuration comes from its own `env` (see `optionsFromEnv`), never from storage;
 * override `exporterOptions(env)` to take it from elsewhere.
 */
export class SpoolObject extends DurableObject {
  #engine;
  #alarms = [];

  /** Options for this object's exporter; override to configure it otherwise. */
  exporterOptions(env) {
    return { drainBudget: DEFAULT_DRAIN_BUDGET, ...optionsFromEnv(env) };
  }

  /** The wasm engine on this object's storage, opened once per instance. */
  #open() {
    this.#engine ??= (async () => {
      const storage = this.ctx.storage;
      const report = (err) => console.error(`[export-retry] setting the spool alarm failed: ${err?.stack ?? err}`);
      const scheduler = {
        schedule: (atMs) => storage.setAlarm(atMs).catch(report),
        cancel: () => storage.deleteAlarm().catch(report),
      };
      const options = { ...this.exporterOptions(this.env), storage: new DurableObjectSqlStorage(storage) };
      return openEngine(options, { scheduler });
    })();
    this.#engine.catch(() => {
      this.#engine = undefined; // try again on the next call
    });
    return this.#engine;
  }

  /** RPC: store a payload that failed in a request isolate; resolves `{ outcome }`. */
  async spool(body, options) {
    const engine = await this.#open();
    return engine.spool(body, options);
  }

  /** RPC: a request isolate saw the backend take a probe: drain now. */
  async backendRecovered() {
    const engine = await this.#open();
    engine.backendRecovered();
  }

  /** RPC: the spool's figures, its next alarm and its last alarm runs. */
  async stats() {
    const engine = await this.#open();
    return { ...engine.stats(), nextAlarm: await this.ctx.storage.getAlarm(), alarms: this.#alarms.slice() };
  }

  /** The drain. Never throws for an expected failure; re-arms while records remain. */
  async alarm() {
    const started = Date.now();
    let engine;
    try {
      engine = await this.#open();
      await engine.wake();
    } catch (err) {
      console.error(`[export-retry] spool alarm failed: ${err?.stack ?? err}`);
    } finally {
      const stats = engine?.stats();
      this.#alarms.push({ at: started, ms: Date.now() - started, sends: stats?.passSends ?? 0 });
      if (this.#alarms.length > 100) this.#alarms.shift();
      if ((stats === undefined || stats.queued > 0) && (await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(stats?.nextAttemptAt ?? Date.now() + 30_000);
      }
    }
  }
}
