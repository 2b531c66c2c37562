/**
 * A real HTTP test backend on 127.0.0.1 that fails the way real backends fail:
 * error statuses (with Retry-After), refused connections, hung requests, TCP resets.
 *
 *   const backend = await startBackend();
 *   backend.enqueue("503", { status: 429, retryAfter: "2" }); // next two requests
 *   await backend.setMode("refuse");                          // default from now on
 *   await backend.waitFor((b) => b.delivered.length === 3, { what: "3 deliveries" });
 *   await backend.close();
 *
 * Modes: "ok" | "<status>" (e.g. "503") | { status, retryAfter?, location?, name? } | "hang" | "reset" | "refuse"
 * and two hostile ones: "huge" (200 with an endless body, sent as fast as the client reads, up to
 * 1 GiB; the record's `bodyBytesSent` says how much went out) and "trickle" (the response head one
 * byte every 100 ms, forever).
 * A request's mode name is "ok", the status as a string ("503"), the object's `name`, or the keyword.
 */
import { createServer, STATUS_CODES } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

const RESET_HEAD = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n";

/** Starts a backend on an ephemeral port; default mode "ok". */
export async function startBackend() {
  const backend = new Backend();
  await backend.setMode("ok");
  return backend;
}

/** @typedef {{ method: string, path: string, headers: Record<string, string | string[]>, body: Buffer, at: number, mode: string }} RecordedRequest */

class Backend {
  #server = createServer((req, res) => this.#onRequest(req, res));
  #sockets = new Set();
  #port = 0;
  #mode = parseMode("ok");
  #queue = [];
  /** @type {RecordedRequest[]} */ #requests = [];
  /** @type {RecordedRequest[]} */ #delivered = [];
  #transition = Promise.resolve();
  #closing;

  constructor() {
    // Like a real collector, keep idle connections a while. (undici takes 2 s off a
    // server's keep-alive hint, so a short one would make every fetch reconnect.)
    this.#server.keepAliveTimeout = 30_000;
    this.#server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  /** "http://127.0.0.1:PORT"; stays the same across refuse/listen switches. */
  get url() { return `http://127.0.0.1:${this.#port}`; }
  get port() { return this.#port; }
  /** Every received request (refused connections excepted), in arrival-completion order. */
  get requests() { return this.#requests; }
  /** The requests answered 2xx, in order (same objects as in `requests`). */
  get delivered() { return this.#delivered; }
  /** @returns {{ total: number, byMode: Record<string, number> }} */
  get counts() {
    const byMode = {};
    for (const r of this.#requests) byMode[r.mode] = (byMode[r.mode] ?? 0) + 1;
    return { total: this.#requests.length, byMode };
  }

  /** Sets the default mode. Resolves once the listener is open (or closed, for "refuse"). */
  setMode(mode) {
    this.#mode = parseMode(mode);
    const done = this.#transition.then(() => this.#syncListener());
    this.#transition = done.catch(() => {});
    return done;
  }

  /** One-shot modes for the next requests, in order, before the default applies again. */
  enqueue(...modes) {
    const parsed = modes.map(parseMode);
    if (parsed.some((m) => m.kind === "refuse")) throw new TypeError('"refuse" is only valid with setMode()');
    this.#queue.push(...parsed);
  }

  /** Forgets recorded requests; keeps the default mode and any enqueued modes. */
  reset() {
    this.#requests = [];
    this.#delivered = [];
  }

  /** Polls `predicate(backend)` every 10 ms; resolves with its truthy value or rejects at the deadline. */
  async waitFor(predicate, { timeoutMs = 10000, what = "condition" } = {}) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const value = await predicate(this);
      if (value) return value;
      if (performance.now() >= deadline) {
        throw new Error(`backend.waitFor: timed out after ${timeoutMs} ms waiting for ${what}; counts ${JSON.stringify(this.counts)}`);
      }
      await sleep(10);
    }
  }

  /** Closes the listener and destroys every socket, hung ones included. Idempotent. */
  close() {
    this.#queue.length = 0;
    this.#closing ??= this.#transition.then(() => this.#stopListening());
    return this.#closing;
  }

  async #syncListener() {
    if (this.#closing) return;
    const want = this.#mode.kind !== "refuse";
    if (want && !this.#server.listening) {
      await new Promise((resolve, reject) => {
        this.#server.once("error", reject);
        this.#server.listen(this.#port, "127.0.0.1", () => {
          this.#server.off("error", reject);
          this.#port = this.#server.address().port;
          resolve();
        });
      });
    } else if (!want && this.#server.listening) {
      await this.#stopListening();
    }
  }

  #stopListening() {
    return new Promise((resolve) => {
      if (this.#server.listening) this.#server.close(() => resolve());
      else resolve();
      for (const socket of this.#sockets) socket.destroy();
    });
  }

  #onRequest(req, res) {
    if (this.#mode.kind === "refuse") return req.socket.destroy(); // raced a switch to refuse
    const mode = this.#queue.shift() ?? this.#mode;
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const record = {
        method: req.method, path: req.url, headers: { ...req.headers },
        body: Buffer.concat(chunks), at: Date.now(), mode: mode.name,
      };
      this.#requests.push(record);
      if (mode.kind === "hang") return;
      if (mode.kind === "huge") return sendEndlessBody(res, record);
      if (mode.kind === "trickle") return trickleHead(req.socket);
      if (mode.kind === "reset") {
        const socket = req.socket;
        socket.write(RESET_HEAD, () => {
          if (socket.destroyed) return;
          if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
          else socket.destroy();
        });
        return;
      }
      const headers = { "content-type": "text/plain" };
      if (mode.retryAfter !== undefined) headers["retry-after"] = String(mode.retryAfter);
      if (mode.location !== undefined) headers.location = mode.location;
      if (mode.status >= 200 && mode.status < 300) this.#delivered.push(record);
      res.writeHead(mode.status, headers).end(STATUS_CODES[mode.status] ?? `status ${mode.status}`);
    });
  }
}

function parseMode(mode) {
  if (mode === "ok") return { kind: "status", status: 200, name: "ok" };
  if (["hang", "reset", "refuse", "huge", "trickle"].includes(mode)) return { kind: mode, name: mode };
  if (typeof mode === "string" && /^\d{3}$/.test(mode)) return statusMode(Number(mode), undefined, mode);
  if (mode && typeof mode === "object") return { ...statusMode(mode.status, mode.retryAfter, mode.name), location: mode.location };
  throw new TypeError(`unknown backend mode ${JSON.stringify(mode)}`);
}

function statusMode(status, retryAfter, name = String(status)) {
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new TypeError(`backend mode status must be an integer in 200..599, got ${status}`);
  }
  return { kind: "status", status, retryAfter, name };
}

const HUGE_LIMIT = 1024 * 1024 * 1024;

/** A 200 whose body never ends (up to 1 GiB), written as fast as the client reads it. */
function sendEndlessBody(res, record) {
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  record.bodyBytesSent = 0;
  res.writeHead(200, { "content-type": "application/octet-stream" });
  const pump = () => {
    while (!res.destroyed && record.bodyBytesSent < HUGE_LIMIT) {
      record.bodyBytesSent += chunk.length;
      if (!res.write(chunk)) return res.once("drain", pump);
    }
    if (!res.destroyed) res.end();
  };
  res.on("close", () => (record.closedAt = Date.now()));
  pump();
}

/** The response head, one byte every 100 ms, until the client gives up. */
function trickleHead(socket) {
  const head = Buffer.from("HTTP/1.1 200 OK\r\nX-Slow: " + "z".repeat(100000));
  let at = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || at >= head.length) return clearInterval(timer);
    socket.write(head.subarray(at, at + 1));
    at += 1;
  }, 100);
  socket.on("close", () => clearInterval(timer));
}
