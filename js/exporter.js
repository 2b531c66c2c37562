/**
 * The runtime-neutral host shim: checks the adapters a user passes, assembles the
 * host object the wasm engine drives (fetch, storage, clock, sleep, wake-ups,
 * logger), and wraps the engine in the public exporter object. No retry decision
 * is made here; they are all in the Rust engine (src/engine.rs).
 */
import { Exporter as WasmExporter } from "../pkg/export_retry.js";

const STORAGE_METHODS = ["get", "put", "delete", "list"];

/** The default logger: the console, with a prefix that says who is talking. */
const consoleLogger = {
  warn: (message) => console.warn(`[export-retry] ${message}`),
  error: (message) => console.error(`[export-retry] ${message}`),
};

/**
 * Creates an exporter and recovers any backlog its storage holds.
 * @param {object} options see index.d.ts (`ExporterOptions`)
 * @param {{ scheduler: object, envTimeout?: string }} runtime what the runtime's entry supplies
 */
export async function createExporterWith(options, runtime) {
  return new RetryExporter(await openEngine(options, runtime));
}

/** A scheduler that never wakes anything (where something else wakes the engine). */
export const noScheduler = { schedule() {}, cancel() {} };

/** Checks that `storage` is a storage adapter; `hint` says what to pass instead. */
export function requireStorage(storage, hint = "use new FileStorage({ dir }) from export-retry/node, or new MemoryStorage()") {
  return requireMethods("storage", storage, STORAGE_METHODS, hint);
}

/**
 * Checks every option now, as the engine will (a throwaway engine with no I/O),
 * so a bad or misspelt one throws where the options were given.
 */
export function checkEngineOptions(options) {
  const unused = () => [];
  buildEngine(options, { scheduler: noScheduler }, {
    storageGet: unused, storagePut: unused, storageDelete: unused, storageList: unused,
  }).free();
}

/** Builds the engine on `options.storage` and recovers the backlog it holds. */
export async function openEngine(options, runtime) {
  const storage = requireStorage(checkOptions(options).storage);
  const engine = buildEngine(options, runtime, {
    storageGet: (key) => storage.get(key),
    storagePut: (key, value) => storage.put(key, value),
    storageDelete: (key) => storage.delete(key),
    storageList: (prefix) => storage.list(prefix),
    get maxValueBytes() {
      return storage.maxValueBytes;
    },
  });
  await engine.open();
  return engine;
}

/**
 * Builds the wasm engine on a host made of the user's adapters (fetch, logger,
 * scheduler) and `parts`, the runtime's storage or hand-off methods.
 */
export function buildEngine(options, runtime, parts) {
  checkOptions(options);
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== "function") {
    throw new TypeError("export-retry: option `fetch` must be a function (the runtime has no global fetch)");
  }
  const logger = options.logger === undefined ? consoleLogger : requireMethods("logger", options.logger, ["warn", "error"]);
  const scheduler = options.scheduler === undefined ? runtime.scheduler
    : requireMethods("scheduler", options.scheduler, ["schedule", "cancel"]);

  let engine;
  const host = Object.defineProperties({
    fetch: (url, init) => fetchFn(url, init),
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    schedule: (atMs) => scheduler.schedule(atMs, () => engine.wake()),
    cancel: () => scheduler.cancel(),
    warn: (message) => logger.warn(message),
    error: (message) => logger.error(message),
  }, Object.getOwnPropertyDescriptors(parts));
  engine = new WasmExporter(options, host, runtime.envTimeout ?? null);
  return engine;
}

function checkOptions(options) {
  if (options === null || typeof options !== "object") {
    throw new TypeError("createExporter(options): options must be an object");
  }
  return options;
}

/** The public exporter: a thin face over the wasm engine. */
export class RetryExporter {
  #engine;

  constructor(engine) {
    this.#engine = engine;
  }

  /**
   * Sends one payload; resolves `{ outcome, attempts, status? }` once it is
   * delivered, durably spooled, rejected or dropped. Never rejects for a failed
   * export; throws a TypeError at once for a bad argument.
   */
  export(body, options) {
    return this.#engine.export(body, options);
  }

  /** `{ queued, queuedBytes, delivered, spooled, rejected, dropped, corrupt, inFlight, nextAttemptAt, delayMs }` */
  stats() {
    return this.#engine.stats();
  }

  /** One drain pass now over what is due (what the wake-up calls). */
  drain() {
    return this.#engine.drain();
  }

  /** Settles the exports under way (delivered, spooled, rejected or dropped). */
  forceFlush() {
    return this.#engine.forceFlush();
  }

  /** Stops wake-ups and settles exports under way; never keeps a process alive. */
  shutdown() {
    return this.#engine.shutdown();
  }

  [Symbol.asyncDispose]() {
    return this.shutdown();
  }
}

export function requireMethods(option, value, methods, hint) {
  const missing = value !== null && typeof value === "object"
    ? methods.filter((m) => typeof value[m] !== "function")
    : methods;
  if (missing.length > 0) {
    const what = value === undefined ? "is required" : `is missing method(s) ${missing.join(", ")}`;
    throw new TypeError(`export-retry: option \`${option}\` ${what}: it needs ${methods.join(", ")}${hint ? ` (${hint})` : ""}`);
  }
  return value;
}
