/**
 * export-retry/otel in real workerd: the example Worker (examples/otel-worker.js,
 * examples/otel-wrangler.toml) instrumented with @pydantic/otel-cf-workers, whose
 * `exporter` is export-retry's OTLPTraceExporter on the SpoolObject Durable Object.
 * Requests made while the backend is down have their spans delivered, from the
 * spool, after it comes back; decoded with an independent OTLP decoder and counted.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBackend } from "../support/backend.js";
import { startWorker as startWrangler } from "../support/wrangler.js";
import { waitUntil, guardUnhandledRejections } from "../support/wait.js";
import { spansOf } from "../support/otel-otlp.js";

const unhandled = guardUnhandledRejections();
const SECRET = "TOPSECRET-otel-workers-5c1d";
const TIMEOUT = { timeout: 120_000 };

const RETRY_OPTIONS = JSON.stringify({ immediateRetryDelayMs: 20, initialDelayMs: 100, maxDelayMs: 400, timeoutMs: 2000 });

let backend;
const dirs = [];
const workers = [];

before(async () => {
  backend = await startBackend();
});
after(async () => {
  for (const w of workers) await w.stop().catch(() => {});
  await backend?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  unhandled.assertNone();
});

async function startWorker(vars) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-otel-workerd-"));
  dirs.push(dir);
  const w = await startWrangler({
    persistDir: dir,
    config: "examples/otel-wrangler.toml",
    vars: { EXPORT_RETRY_OPTIONS: RETRY_OPTIONS, ...vars },
  });
  workers.push(w);
  return w;
}

const workSpans = (tagPrefix) => spansOf(backend.delivered).filter((s) => s.name === "work" && String(s.attributes["example.tag"]).startsWith(tagPrefix));

test("otel-cf-workers with OTLPTraceExporter: spans of requests made while the backend is down are spooled in the Durable Object and delivered after it comes back", TIMEOUT, async () => {
  const worker = await startWorker({
    OTEL_EXPORTER_OTLP_ENDPOINT: backend.url,
    OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${SECRET}`,
  });
  await backend.setMode("ok");
  // Up: a request's spans go straight through.
  assert.equal((await worker.fetch("/work?tag=up-0")).status, 200);
  const [up] = await backend.waitFor(() => {
    const spans = workSpans("up-");
    return spans.length > 0 && spans;
  }, { timeoutMs: 20_000, what: "the span of a request made while the backend is up" });
  assert.equal(up.resource["service.name"], "export-retry-otel-example");
  const upRequest = backend.delivered.find((r) => spansOf([r]).some((s) => s.spanId === up.spanId));
  assert.equal(upRequest.path, "/v1/traces", "OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces");
  assert.equal(upRequest.headers.authorization, `Bearer ${SECRET}`, "OTEL_EXPORTER_OTLP_HEADERS on the request path");

  // Down: every export fails; the batches go to the SpoolObject.
  await backend.setMode("503");
  const tags = Array.from({ length: 8 }, (_, i) => `down-${i}`);
  for (const tag of tags) {
    const res = await worker.fetch(`/work?tag=${tag}`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  let [stats] = await waitUntil(async () => {
    const s = await worker.spoolStats();
    return s[0].spooled >= tags.length && s;
  }, { timeoutMs: 30_000, what: "the outage's traces in the spool", intervalMs: 100 });
  assert.ok(stats.queued >= tags.length, JSON.stringify(stats));
  assert.equal(workSpans("down-").length, 0, "nothing of the outage was delivered during it");
  assert.ok(backend.requests.some((r) => r.mode === "503" && r.path === "/v1/traces"), "the exports were attempted");

  // Back: the spool delivers every request's spans.
  await backend.setMode("ok");
  const delivered = await backend.waitFor(() => {
    const spans = workSpans("down-");
    return new Set(spans.map((s) => s.attributes["example.tag"])).size === tags.length && spans;
  }, { timeoutMs: 30_000, what: "the spans of every request made during the outage" });
  assert.deepEqual(new Set(delivered.map((s) => s.attributes["example.tag"])), new Set(tags));
  const traces = new Set(delivered.map((s) => s.traceId));
  assert.equal(traces.size, tags.length, "one trace per request");
  const all = spansOf(backend.delivered).filter((s) => traces.has(s.traceId));
  assert.equal(new Set(all.map((s) => s.spanId)).size, 2 * tags.length, "each request's handler span and its work span, distinct ids");
  assert.ok(all.some((s) => s.name.startsWith("fetchHandler GET")), all.map((s) => s.name).join(", "));

  const fromSpool = backend.delivered.filter((r) => spansOf([r]).some((s) => traces.has(s.traceId)));
  assert.ok(fromSpool.every((r) => r.path === "/v1/traces" && r.headers["content-type"] === "application/x-protobuf"));
  assert.ok(fromSpool.every((r) => r.headers.authorization === `Bearer ${SECRET}`), "the SpoolObject sends its configured headers");
  [stats] = await waitUntil(async () => {
    const s = await worker.spoolStats();
    return s[0].queued === 0 && s;
  }, { timeoutMs: 20_000, what: "an empty spool", intervalMs: 100 });
  assert.ok(stats.delivered >= tags.length, JSON.stringify(stats));
  assert.ok(stats.alarms.some((a) => a.sends > 0), "delivered from the object's alarm");
});

test("otel-cf-workers with logfire(): the token from LOGFIRE_TOKEN authorizes the request path and the SpoolObject's drain, and is never logged", TIMEOUT, async () => {
  const token = "pylf_v1_eu_W0rkersT0kenNeverLogged";
  const worker = await startWorker({ LOGFIRE_TOKEN: token, LOGFIRE_BASE_URL: `${backend.url}/logfire` });
  await backend.setMode("503");
  const tags = ["lf-0", "lf-1", "lf-2"];
  for (const tag of tags) {
    const res = await worker.fetch(`/work?tag=${tag}`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  await waitUntil(async () => (await worker.spoolStats())[0].spooled >= tags.length,
    { timeoutMs: 30_000, what: "the outage's traces in the spool", intervalMs: 100 });
  assert.equal(workSpans("lf-").length, 0);
  await backend.setMode("ok");
  const delivered = await backend.waitFor(() => {
    const spans = workSpans("lf-");
    return new Set(spans.map((s) => s.attributes["example.tag"])).size === tags.length && spans;
  }, { timeoutMs: 30_000, what: "the spans of the Logfire worker's requests" });
  assert.deepEqual(new Set(delivered.map((s) => s.attributes["example.tag"])), new Set(tags));
  const sent = backend.requests.filter((r) => r.path.startsWith("/logfire/"));
  assert.ok(sent.length >= tags.length && sent.every((r) => r.path === "/logfire/v1/traces"), sent.map((r) => r.path).join(", "));
  assert.ok(sent.every((r) => r.headers.authorization === token), "the token is the Authorization header, from the request path and from the spool");
  assert.ok(worker.output.includes("Currently retrying"), "export-retry logged the outage");
  assert.ok(!worker.output.includes("W0rkersT0ken"), "the token is in none of the Worker's output");
});
