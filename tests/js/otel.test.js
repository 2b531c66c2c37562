/**
 * export-retry/otel in Node: real OpenTelemetry SDKs (sdk-trace-base, sdk-logs,
 * sdk-metrics) export through the OTLP exporters of export-retry to the loopback
 * backend, which is down for part of each run; what arrives is decoded with an
 * independent OTLP decoder (tests/support/otel-otlp.js) and counted. Then the
 * OpenTelemetry environment variables, the Logfire preset, the result codes,
 * forceFlush/shutdown, and a process that must exit by itself.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { gunzipSync } from "node:zlib";
import {
  BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { BatchLogRecordProcessor, InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { AggregationTemporality, InstrumentType, MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { context, trace } from "@opentelemetry/api";
import * as sdkTraceBase1x from "otel-sdk-trace-base-1x";
import { MemoryStorage } from "export-retry";
import { FileStorage } from "export-retry/node";
import {
  ExportResultCode, LOGFIRE_BASE_URLS, OTLPLogExporter, OTLPMetricExporter, OTLPTraceExporter, logfire, logfireBaseUrl,
} from "export-retry/otel";
import { startBackend } from "../support/backend.js";
import { runNode } from "../support/child.js";
import { waitUntil, guardUnhandledRejections, cleanups } from "../support/wait.js";
import { decodeRequest, logsOf, metricPointsOf, spansOf } from "../support/otel-otlp.js";

const unhandled = guardUnhandledRejections();
after(() => unhandled.assertNone());

const FAST = { immediateRetryDelayMs: 20, initialDelayMs: 20, maxDelayMs: 200, timeoutMs: 2000 };
const TIMEOUT = { timeout: 60_000 };
const quiet = { warn() {}, error() {} };

async function setup(t) {
  const defer = cleanups(t);
  const backend = await startBackend();
  defer(() => backend.close());
  return { defer, backend };
}

async function tempDir(defer) {
  const dir = await mkdtemp(join(tmpdir(), "export-retry-otel-"));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Passes every call to `exporter` and records each result the SDK receives. */
function recording(exporter, results) {
  return {
    export: (items, callback) => exporter.export(items, (result) => {
      results.push(result);
      callback(result);
    }),
    forceFlush: () => exporter.forceFlush(),
    shutdown: () => exporter.shutdown(),
    ...(exporter.selectAggregationTemporality
      ? { selectAggregationTemporality: (type) => exporter.selectAggregationTemporality(type) }
      : {}),
  };
}

/** Finished spans of a real SDK (names `name-0`...), to hand to an exporter directly. */
function makeSpans(count, name = "span") {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] });
  const tracer = provider.getTracer("otel-test");
  for (let i = 0; i < count; i++) tracer.startSpan(`${name}-${i}`, { attributes: { seq: i } }).end();
  return memory.getFinishedSpans();
}

async function makeLogs(count, body = "log") {
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: memory })] });
  const logger = provider.getLogger("otel-test");
  for (let i = 0; i < count; i++) logger.emit({ body: `${body}-${i}`, attributes: { seq: i } });
  await provider.forceFlush();
  const records = memory.getFinishedLogRecords();
  assert.equal(records.length, count);
  return records;
}

/** One push of a real MeterProvider's data: a counter of `value` with attribute `push`. */
async function makeMetrics(push, value = 1) {
  let collected;
  const sink = {
    export: (metrics, callback) => {
      collected = metrics;
      callback({ code: ExportResultCode.SUCCESS });
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const reader = new PeriodicExportingMetricReader({ exporter: sink, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter("otel-test").createCounter("pushes").add(value, { push });
  await reader.forceFlush();
  await provider.shutdown();
  return collected;
}

const exportOnce = (exporter, items) => new Promise((resolve) => exporter.export(items, resolve));

test("traces: 1,000 spans of a BatchSpanProcessor all arrive through an outage (refused, then 503), decoded from OTLP protobuf", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const dir = await tempDir(defer);
  const exporter = new OTLPTraceExporter({
    url: `${backend.url}/v1/traces`, storage: new FileStorage({ dir }), logger: quiet, ...FAST,
  });
  const results = [];
  const provider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(recording(exporter, results), { maxExportBatchSize: 50, scheduledDelayMillis: 5 })],
  });
  defer(() => provider.shutdown());
  const tracer = provider.getTracer("otel-test");
  const emit = async (from, to) => {
    for (let i = from; i < to; i++) {
      tracer.startSpan(`span-${i}`, { attributes: { seq: i } }).end();
      if (i % 50 === 49) await provider.forceFlush();
    }
    await provider.forceFlush();
  };

  await emit(0, 200);
  await backend.setMode("refuse");
  await emit(200, 450);
  await backend.setMode("503");
  await emit(450, 700);
  const inner = await exporter.retryExporter();
  const during = inner.stats();
  assert.ok(during.spooled >= 1 && during.queued === during.spooled, `the outage's batches were spooled: ${JSON.stringify(during)}`);
  assert.ok((await readdir(dir)).some((name) => name.startsWith("traces-r")), "spooled records are on disk, keyed by signal");
  const before = spansOf(backend.delivered);
  assert.equal(before.length, 200, "nothing of the outage was delivered during it");
  assert.equal(new Set(before.map((s) => s.spanId)).size, 200);

  await backend.setMode("ok");
  await emit(700, 1000);
  const spans = await backend.waitFor(() => {
    const all = spansOf(backend.delivered);
    return new Set(all.map((s) => s.spanId)).size >= 1000 && all;
  }, { timeoutMs: 30_000, what: "1,000 distinct span ids" });
  assert.equal(new Set(spans.map((s) => s.spanId)).size, 1000);
  assert.deepEqual(new Set(spans.map((s) => s.attributes.seq)), new Set(Array.from({ length: 1000 }, (_, i) => i)));
  assert.ok(spans.every((s) => s.name === `span-${s.attributes.seq}`));
  assert.ok(backend.delivered.every((r) => r.path === "/v1/traces" && r.headers["content-type"] === "application/x-protobuf"));
  assert.ok(results.length >= 20 && results.every((r) => r.code === ExportResultCode.SUCCESS),
    `every batch reported SUCCESS (delivered or spooled): ${JSON.stringify(results.filter((r) => r.code !== ExportResultCode.SUCCESS))}`);
  await waitUntil(() => inner.stats().queued === 0, { timeoutMs: 10_000, what: "an empty spool" });
});

test("logs: 1,000 records of a BatchLogRecordProcessor all arrive through an outage (TCP resets, then 429), decoded from OTLP protobuf", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const exporter = new OTLPLogExporter({ url: `${backend.url}/v1/logs`, storage: new MemoryStorage(), logger: quiet, ...FAST });
  const results = [];
  const provider = new LoggerProvider({
    processors: [new BatchLogRecordProcessor({ exporter: recording(exporter, results), maxExportBatchSize: 50, scheduledDelayMillis: 5 })],
  });
  defer(() => provider.shutdown());
  const logger = provider.getLogger("otel-test");
  const emit = async (from, to) => {
    for (let i = from; i < to; i++) {
      logger.emit({ body: `log-${i}`, attributes: { seq: i } });
      if (i % 50 === 49) await provider.forceFlush();
    }
    await provider.forceFlush();
  };

  await emit(0, 300);
  await backend.setMode("reset");
  await emit(300, 500);
  await backend.setMode({ status: 429, retryAfter: "0" });
  await emit(500, 800);
  const inner = await exporter.retryExporter();
  const during = inner.stats();
  assert.ok(during.spooled >= 1 && during.queued === during.spooled, `the outage's batches were spooled: ${JSON.stringify(during)}`);
  assert.equal(new Set(logsOf(backend.delivered).map((l) => l.body)).size, 300, "nothing of the outage was delivered during it");
  await backend.setMode("ok");
  await emit(800, 1000);
  const logs = await backend.waitFor(() => {
    const all = logsOf(backend.delivered);
    return new Set(all.map((l) => l.body)).size >= 1000 && all;
  }, { timeoutMs: 30_000, what: "1,000 distinct log bodies" });
  assert.deepEqual(new Set(logs.map((l) => l.body)), new Set(Array.from({ length: 1000 }, (_, i) => `log-${i}`)));
  assert.ok(logs.every((l) => l.body === `log-${l.attributes.seq}`));
  assert.ok(backend.delivered.every((r) => r.path === "/v1/logs"));
  assert.ok(results.every((r) => r.code === ExportResultCode.SUCCESS), JSON.stringify(results.filter((r) => r.code !== 0)));
  await waitUntil(() => inner.stats().queued === 0, { timeoutMs: 10_000, what: "an empty spool" });
});

test("metrics: 300 pushes of a PeriodicExportingMetricReader (delta) all arrive through an outage, one data point each", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const exporter = new OTLPMetricExporter({
    url: `${backend.url}/v1/metrics`, storage: new MemoryStorage(), logger: quiet, temporalityPreference: "delta", ...FAST,
  });
  const results = [];
  const reader = new PeriodicExportingMetricReader({ exporter: recording(exporter, results), exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  defer(() => provider.shutdown());
  const counter = provider.getMeter("otel-test").createCounter("pushes");
  const push = async (from, to) => {
    for (let i = from; i < to; i++) {
      counter.add(i + 1, { push: i });
      await reader.forceFlush();
    }
  };

  await push(0, 100);
  await backend.setMode("refuse");
  await push(100, 150);
  await backend.setMode("503");
  await push(150, 220);
  const inner = await exporter.retryExporter();
  assert.equal(inner.stats().spooled, 120, `every push of the outage was spooled: ${JSON.stringify(inner.stats())}`);
  assert.equal(metricPointsOf(backend.delivered).length, 100, "nothing of the outage was delivered during it");
  await backend.setMode("ok");
  await push(220, 300);
  const points = await backend.waitFor(() => {
    const all = metricPointsOf(backend.delivered);
    return new Set(all.map((p) => p.attributes.push)).size >= 300 && all;
  }, { timeoutMs: 30_000, what: "300 distinct pushes" });
  const byPush = new Map();
  for (const p of points) byPush.set(p.attributes.push, p);
  assert.deepEqual([...byPush.keys()].sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
  assert.ok([...byPush.values()].every((p) => p.name === "pushes" && p.value === p.attributes.push + 1));
  assert.ok(points.every((p) => p.temporality === 1), "AGGREGATION_TEMPORALITY_DELTA");
  assert.equal(results.length, 300);
  assert.ok(results.every((r) => r.code === ExportResultCode.SUCCESS));
  await waitUntil(() => inner.stats().queued === 0, { timeoutMs: 10_000, what: "an empty spool" });
});

test("spans of @opentelemetry/sdk-trace-base 1.x (what @microlabs/otel-cf-workers 0.9 makes) are exported too, scope and parent included", TIMEOUT, async (t) => {
  const { backend } = await setup(t);
  const memory = new sdkTraceBase1x.InMemorySpanExporter();
  const provider = new sdkTraceBase1x.BasicTracerProvider();
  provider.addSpanProcessor(new sdkTraceBase1x.SimpleSpanProcessor(memory));
  const tracer = provider.getTracer("legacy-scope", "1.2.3");
  const parent = tracer.startSpan("parent");
  tracer.startSpan("child", {}, trace.setSpan(context.active(), parent)).end();
  parent.end();
  const spans = memory.getFinishedSpans();
  assert.equal(spans[0].instrumentationScope, undefined, "a 1.x span has no instrumentationScope");
  const exporter = new OTLPTraceExporter({ storage: new MemoryStorage(), url: `${backend.url}/v1/traces`, ...FAST });
  assert.deepEqual(await exportOnce(exporter, spans), { code: ExportResultCode.SUCCESS });
  await exporter.shutdown();
  const request = decodeRequest("traces", backend.delivered[0]);
  const scopeSpans = request.resourceSpans[0].scopeSpans[0];
  assert.deepEqual(scopeSpans.scope, { name: "legacy-scope", version: "1.2.3" });
  const byName = Object.fromEntries(scopeSpans.spans.map((s) => [s.name, s]));
  assert.equal(byName.child.parentSpanId, byName.parent.spanId);
  assert.equal(byName.child.traceId, byName.parent.traceId);
  assert.equal(byName.parent.parentSpanId, undefined);
});

test("metric temporality: cumulative by default; delta and lowmemory as the OTLP exporter spec says", () => {
  const storage = new MemoryStorage();
  const { CUMULATIVE, DELTA } = AggregationTemporality;
  const select = (options) => {
    const e = new OTLPMetricExporter({ storage, url: "http://127.0.0.1:9/v1/metrics", env: {}, ...options });
    return Object.fromEntries(Object.values(InstrumentType).map((type) => [type, e.selectAggregationTemporality(type)]));
  };
  assert.ok(Object.values(select({})).every((v) => v === CUMULATIVE));
  assert.deepEqual(select({ temporalityPreference: "delta" }), {
    COUNTER: DELTA, OBSERVABLE_COUNTER: DELTA, HISTOGRAM: DELTA, GAUGE: DELTA, OBSERVABLE_GAUGE: DELTA,
    UP_DOWN_COUNTER: CUMULATIVE, OBSERVABLE_UP_DOWN_COUNTER: CUMULATIVE,
  });
  assert.deepEqual(select({ env: { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "LowMemory" } }), {
    COUNTER: DELTA, HISTOGRAM: DELTA, OBSERVABLE_COUNTER: CUMULATIVE, GAUGE: CUMULATIVE, OBSERVABLE_GAUGE: CUMULATIVE,
    UP_DOWN_COUNTER: CUMULATIVE, OBSERVABLE_UP_DOWN_COUNTER: CUMULATIVE,
  });
});

test("a backlog spooled to FileStorage by the three signals' exporters is delivered by new exporters on the same directory, each signal to its path", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const dir = await tempDir(defer);
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: backend.url };
  const make = () => ({
    traces: new OTLPTraceExporter({ storage: new FileStorage({ dir }), env, logger: quiet, ...FAST }),
    logs: new OTLPLogExporter({ storage: new FileStorage({ dir }), env, logger: quiet, ...FAST }),
    metrics: new OTLPMetricExporter({ storage: new FileStorage({ dir }), env, logger: quiet, ...FAST }),
  });
  await backend.setMode("503");
  const first = make();
  const spans = makeSpans(3, "restart");
  const logs = await makeLogs(2, "restart");
  const metrics = await makeMetrics(7, 70);
  assert.equal((await exportOnce(first.traces, spans)).code, ExportResultCode.SUCCESS);
  assert.equal((await exportOnce(first.logs, logs)).code, ExportResultCode.SUCCESS);
  assert.equal((await exportOnce(first.metrics, metrics)).code, ExportResultCode.SUCCESS);
  for (const e of Object.values(first)) assert.equal((await e.retryExporter()).stats().queued, 1);
  for (const e of Object.values(first)) await e.shutdown();
  const files = await readdir(dir);
  for (const signal of ["traces", "logs", "metrics"]) {
    assert.equal(files.filter((f) => f.startsWith(`${signal}-r`)).length, 1, `${signal}: ${files}`);
  }

  await backend.setMode("ok");
  backend.reset();
  const second = make();
  defer(() => Promise.all(Object.values(second).map((e) => e.shutdown())));
  // Opening the exporters recovers their backlog; the drain delivers it with no new export.
  for (const e of Object.values(second)) await e.retryExporter();
  await backend.waitFor((b) => b.delivered.length >= 3, { timeoutMs: 10_000, what: "the three spooled records" });
  const byPath = Object.fromEntries(backend.delivered.map((r) => [r.path, r]));
  assert.deepEqual(Object.keys(byPath).sort(), ["/v1/logs", "/v1/metrics", "/v1/traces"]);
  assert.deepEqual(spansOf([byPath["/v1/traces"]]).map((s) => s.spanId).sort(), spans.map((s) => s.spanContext().spanId).sort());
  assert.deepEqual(logsOf([byPath["/v1/logs"]]).map((l) => l.body).sort(), ["restart-0", "restart-1"]);
  assert.deepEqual(metricPointsOf([byPath["/v1/metrics"]]).map((p) => [p.attributes.push, p.value]), [[7, 70]]);
  await waitUntil(async () => (await readdir(dir)).length === 0, { timeoutMs: 10_000, what: "an empty spool directory" });
});

test("environment: the endpoint variables, signal-specific first, then the base with /v1/<signal>, then explicit options first", TIMEOUT, async (t) => {
  const { backend } = await setup(t);
  const storage = new MemoryStorage();
  const spans = makeSpans(1);
  const logs = await makeLogs(1);
  const metrics = await makeMetrics(1);
  const send = async (Exporter, items, options) => {
    backend.reset();
    const exporter = new Exporter({ storage, ...FAST, ...options });
    assert.equal((await exportOnce(exporter, items)).code, ExportResultCode.SUCCESS);
    await exporter.shutdown();
    assert.equal(backend.delivered.length, 1);
    return backend.delivered[0].path;
  };
  for (const base of [`${backend.url}/base`, `${backend.url}/base/`]) {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: base };
    assert.equal(await send(OTLPTraceExporter, spans, { env }), "/base/v1/traces");
    assert.equal(await send(OTLPLogExporter, logs, { env }), "/base/v1/logs");
    assert.equal(await send(OTLPMetricExporter, metrics, { env }), "/base/v1/metrics");
  }
  const env = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `${backend.url}/base`,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${backend.url}/custom/spans`,
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${backend.url}/custom/logs`,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "",
  };
  assert.equal(await send(OTLPTraceExporter, spans, { env }), "/custom/spans", "a signal's endpoint is used as is");
  assert.equal(await send(OTLPLogExporter, logs, { env }), "/custom/logs");
  assert.equal(await send(OTLPMetricExporter, metrics, { env }), "/base/v1/metrics", "an empty variable is unset");
  assert.equal(await send(OTLPTraceExporter, spans, { env, url: `${backend.url}/explicit` }), "/explicit");
  assert.equal(await send(OTLPTraceExporter, spans, { env, endpoint: `${backend.url}/explicit2` }), "/explicit2");

  // Without `env`, process.env is read.
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `${backend.url}/from-process-env`;
  try {
    assert.equal(await send(OTLPTraceExporter, spans, {}), "/from-process-env/v1/traces");
  } finally {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  }
});

test("environment: headers (percent-decoded; the signal's list over the generic one; explicit headers win), protocol and compression change what is sent", TIMEOUT, async (t) => {
  const { backend } = await setup(t);
  const storage = new MemoryStorage();
  const spans = makeSpans(2);
  const ids = spans.map((s) => s.spanContext().spanId).sort();
  const url = `${backend.url}/v1/traces`;
  const send = async (options, items = spans) => {
    backend.reset();
    const exporter = new OTLPTraceExporter({ storage, url, ...FAST, ...options });
    assert.equal((await exportOnce(exporter, items)).code, ExportResultCode.SUCCESS);
    await exporter.shutdown();
    return backend.delivered[0];
  };

  let req = await send({
    env: {
      OTEL_EXPORTER_OTLP_HEADERS: "x-team=blue,x-note=a%20b%2Cc,X-Shared=generic",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-shared=traces,x-only-traces=1",
    },
    headers: { "X-Note": "explicit" },
  });
  assert.equal(req.headers["x-team"], "blue");
  assert.equal(req.headers["x-note"], "explicit");
  assert.equal(req.headers["x-shared"], "traces");
  assert.equal(req.headers["x-only-traces"], "1");
  req = await send({ env: { OTEL_EXPORTER_OTLP_HEADERS: "x-note=a%20b%2Cc" } });
  assert.equal(req.headers["x-note"], "a b,c");

  req = await send({ env: {} });
  assert.equal(req.headers["content-type"], "application/x-protobuf");
  assert.equal(req.headers["content-encoding"], undefined);
  assert.deepEqual(spansOf([req]).map((s) => s.spanId).sort(), ids);

  req = await send({ env: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" } });
  assert.equal(req.headers["content-type"], "application/json");
  const json = JSON.parse(req.body.toString("utf8"));
  assert.deepEqual(json.resourceSpans[0].scopeSpans[0].spans.map((s) => s.spanId).sort(), ids, "OTLP/JSON with hex ids");
  req = await send({ env: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/protobuf" } });
  assert.equal(req.headers["content-type"], "application/x-protobuf");
  req = await send({ env: { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }, protocol: "http/protobuf" });
  assert.equal(req.headers["content-type"], "application/x-protobuf");

  req = await send({ env: { OTEL_EXPORTER_OTLP_COMPRESSION: "gzip" } });
  assert.equal(req.headers["content-encoding"], "gzip");
  assert.deepEqual(spansOf([req]).map((s) => s.spanId).sort(), ids, "gunzipped, the same request");
  assert.ok(gunzipSync(req.body).length > 0);
  req = await send({ env: { OTEL_EXPORTER_OTLP_COMPRESSION: "gzip", OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: "none" } });
  assert.equal(req.headers["content-encoding"], undefined);
  req = await send({ env: { OTEL_EXPORTER_OTLP_COMPRESSION: "none" }, compression: "gzip", protocol: "http/json" });
  assert.equal(req.headers["content-encoding"], "gzip");
  assert.equal(JSON.parse(gunzipSync(req.body).toString("utf8")).resourceSpans[0].scopeSpans[0].spans.length, 2);

  // A gzipped export that is spooled goes out from the spool gzipped, with its header.
  backend.reset();
  await backend.setMode("503");
  const exporter = new OTLPTraceExporter({ storage: new MemoryStorage(), url, compression: "gzip", logger: quiet, ...FAST });
  assert.equal((await exportOnce(exporter, spans)).code, ExportResultCode.SUCCESS);
  assert.equal((await exporter.retryExporter()).stats().queued, 1);
  await backend.setMode("ok");
  req = await backend.waitFor((b) => b.delivered[0], { timeoutMs: 10_000, what: "the drained gzipped record" });
  assert.equal(req.headers["content-encoding"], "gzip");
  assert.deepEqual(spansOf([req]).map((s) => s.spanId).sort(), ids);
  await exporter.shutdown();
});

test("environment: OTEL_EXPORTER_OTLP_TIMEOUT (and the signal's) bound each attempt; explicit timeoutMillis wins", TIMEOUT, async (t) => {
  const { backend } = await setup(t);
  await backend.setMode("hang");
  const spans = makeSpans(1);
  // A hung backend: each export settles (spooled, after two aborted attempts) only
  // because the configured timeout aborts its attempts; the default 10 s would not
  // let it settle before the 5 s deadline.
  for (const options of [
    { env: { OTEL_EXPORTER_OTLP_TIMEOUT: "150" } },
    { env: { OTEL_EXPORTER_OTLP_TIMEOUT: "60000", OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "150" } },
    { env: { OTEL_EXPORTER_OTLP_TIMEOUT: "60000" }, timeoutMillis: 150 },
  ]) {
    backend.reset();
    const exporter = new OTLPTraceExporter({
      storage: new MemoryStorage(), url: `${backend.url}/v1/traces`, logger: quiet, immediateRetryDelayMs: 20, ...options,
    });
    let result;
    exporter.export(spans, (r) => (result = r));
    await waitUntil(() => result, { timeoutMs: 5000, what: `the export to settle with ${JSON.stringify(options)}` });
    assert.equal(result.code, ExportResultCode.SUCCESS);
    const stats = (await exporter.retryExporter()).stats();
    assert.equal(stats.spooled, 1, "spooled after its attempts timed out");
    assert.equal(backend.requests.length, 2, "two attempts, both hung");
    await exporter.shutdown();
  }
});

test("environment: a malformed value throws from the constructor, naming the variable", () => {
  const storage = new MemoryStorage();
  const cases = [
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "not a url", /OTEL_EXPORTER_OTLP_ENDPOINT must be an absolute http\(s\) URL/],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector.example", /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/],
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "//no-scheme/v1/traces", /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an absolute/],
    ["OTEL_EXPORTER_OTLP_HEADERS", "authorization", /OTEL_EXPORTER_OTLP_HEADERS.*"authorization" is not key=value/],
    ["OTEL_EXPORTER_OTLP_HEADERS", "a=b,=c", /OTEL_EXPORTER_OTLP_HEADERS/],
    ["OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=b,c", /OTEL_EXPORTER_OTLP_TRACES_HEADERS.*"c" is not key=value/],
    ["OTEL_EXPORTER_OTLP_TIMEOUT", "ten", /OTEL_EXPORTER_OTLP_TIMEOUT.*whole number of milliseconds, got "ten"/],
    ["OTEL_EXPORTER_OTLP_TIMEOUT", "1.5", /OTEL_EXPORTER_OTLP_TIMEOUT/],
    ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1", /OTEL_EXPORTER_OTLP_TRACES_TIMEOUT.*got "-1"/],
    ["OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", /OTEL_EXPORTER_OTLP_PROTOCOL "grpc" is not supported.*http\/protobuf or http\/json/],
    ["OTEL_EXPORTER_OTLP_PROTOCOL", "http/thrift", /OTEL_EXPORTER_OTLP_PROTOCOL must be one of http\/protobuf, http\/json/],
    ["OTEL_EXPORTER_OTLP_COMPRESSION", "br", /OTEL_EXPORTER_OTLP_COMPRESSION must be one of gzip, none, got "br"/],
    ["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "deflate", /OTEL_EXPORTER_OTLP_TRACES_COMPRESSION must be one of gzip, none/],
  ];
  for (const [variable, value, message] of cases) {
    assert.throws(() => new OTLPTraceExporter({ storage, env: { [variable]: value } }), message, `${variable}=${value}`);
  }
  assert.throws(() => new OTLPMetricExporter({ storage, env: { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "sometimes" } }),
    /OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE must be one of cumulative, delta, lowmemory/);
  // The same for a value read from process.env.
  process.env.OTEL_EXPORTER_OTLP_LOGS_TIMEOUT = "soon";
  try {
    assert.throws(() => new OTLPLogExporter({ storage }), /OTEL_EXPORTER_OTLP_LOGS_TIMEOUT.*"soon"/);
  } finally {
    delete process.env.OTEL_EXPORTER_OTLP_LOGS_TIMEOUT;
  }
});

test("options: bad ones throw from the constructor (export-retry's checks included); FAILED reports rejected and dropped exports with the reason", TIMEOUT, async (t) => {
  const { backend } = await setup(t);
  const storage = new MemoryStorage();
  const url = `${backend.url}/v1/traces`;
  assert.throws(() => new OTLPTraceExporter({ url }), /option `storage` is required/);
  assert.throws(() => new OTLPTraceExporter({ url, storage: {} }), /option `storage` is missing method\(s\) get, put, delete, list/);
  assert.throws(() => new OTLPTraceExporter({ url, spool: {} }), /`spool`.*is for Cloudflare Workers/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, maxDelay: 5 }), /`maxDelay` is not an option of export-retry/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, maxDelayMs: -1 }), RangeError);
  assert.throws(() => new OTLPTraceExporter({ url, storage, timeoutMillis: 1.5 }), /timeoutMs/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, timeoutMs: 100, timeoutMillis: 100 }), /mean the same/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, headers: { a: 1 } }), /value of "a" must be a string/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, protocol: "grpc" }), /"grpc" is not supported/);
  assert.throws(() => new OTLPTraceExporter({ url, storage, temporalityPreference: "delta" }), /for the metric exporter/);
  assert.throws(() => new OTLPTraceExporter({ storage, url: "mailto:ops@example.com" }), /option `url` must be an http\(s\) URL/);

  const spans = makeSpans(3);
  await backend.setMode("400");
  const rejectedBy = new OTLPTraceExporter({ url, storage, logger: quiet, ...FAST });
  const rejected = await exportOnce(rejectedBy, spans);
  assert.equal(rejected.code, ExportResultCode.FAILED);
  assert.match(rejected.error.message, /rejected the export with status 400; it is not retried/);
  assert.equal(rejected.error.status, 400);

  await backend.setMode("503");
  const full = new OTLPTraceExporter({ url, storage: new MemoryStorage(), maxSpoolBytes: 10, logger: quiet, ...FAST });
  const dropped = await exportOnce(full, spans);
  assert.equal(dropped.code, ExportResultCode.FAILED);
  assert.match(dropped.error.message, /dropped/);

  await backend.setMode("ok");
  assert.deepEqual(await exportOnce(rejectedBy, []), { code: ExportResultCode.SUCCESS }, "an empty batch sends nothing");
  assert.equal(backend.requests.filter((r) => r.mode === "ok").length, 0);
  await rejectedBy.shutdown();
  await full.shutdown();
  const late = await exportOnce(rejectedBy, spans);
  assert.equal(late.code, ExportResultCode.FAILED);
  assert.match(late.error.message, /shut down/);
});

test("forceFlush waits until the exports under way are spooled; it rejects when they outlast flushTimeoutMs", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  await backend.setMode("hang");
  const spans = makeSpans(2);
  const exporter = new OTLPTraceExporter({
    url: `${backend.url}/v1/traces`, storage: new MemoryStorage(), logger: quiet, immediateRetryDelayMs: 20, timeoutMs: 200,
  });
  defer(() => exporter.shutdown());
  const results = [];
  exporter.export(spans, (r) => results.push(r));
  exporter.export(spans, (r) => results.push(r));
  assert.equal(results.length, 0);
  await exporter.forceFlush();
  assert.deepEqual(results, [{ code: ExportResultCode.SUCCESS }, { code: ExportResultCode.SUCCESS }]);
  assert.equal((await exporter.retryExporter()).stats().queued, 2, "both spooled by the time forceFlush resolved");

  const slow = new OTLPTraceExporter({
    url: `${backend.url}/v1/traces`, storage: new MemoryStorage(), logger: quiet, timeoutMs: 30_000, flushTimeoutMs: 100,
  });
  let settled;
  slow.export(spans, (r) => (settled = r));
  await assert.rejects(slow.forceFlush(), /forceFlush timed out after 100 ms with 1 export\(s\) still under way/);
  assert.equal(settled, undefined);
  await backend.close(); // the hung attempt fails; the export settles
  await waitUntil(() => settled, { timeoutMs: 10_000, what: "the export to settle once the backend is gone" });
  await slow.shutdown();
});

const CHILD = `
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { FileStorage } from "export-retry/node";
import { OTLPTraceExporter } from "export-retry/otel";
const exporter = new OTLPTraceExporter({
  url: process.env.URL, storage: new FileStorage({ dir: process.env.DIR }),
  immediateRetryDelayMs: 20, timeoutMs: 300, logger: { warn() {}, error() {} },
});
const results = [];
const recording = { export: (s, cb) => exporter.export(s, (r) => { results.push(r.code); cb(r); }), shutdown: () => exporter.shutdown() };
const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(recording)] });
const tracer = provider.getTracer("child");
for (let i = 0; i < 20; i++) tracer.startSpan("child-" + i).end();
await provider.shutdown();
const stats = (await exporter.retryExporter()).stats();
console.log(JSON.stringify({ results, queued: stats.queued }));
`;

test("shutdown never keeps the process alive: a child whose backend hangs or is gone exits by itself with its batch spooled", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const dir = await tempDir(defer);
  await backend.setMode("hang");
  const hung = await runNode(["--input-type=module", "-e", CHILD], { env: { URL: `${backend.url}/v1/traces`, DIR: join(dir, "a") } });
  assert.equal(hung.code, 0, hung.stderr);
  assert.deepEqual(JSON.parse(hung.stdout), { results: [0], queued: 1 });
  await backend.setMode("refuse");
  const gone = await runNode(["--input-type=module", "-e", CHILD], { env: { URL: `${backend.url}/v1/traces`, DIR: join(dir, "b") } });
  assert.equal(gone.code, 0, gone.stderr);
  assert.deepEqual(JSON.parse(gone.stdout), { results: [0], queued: 1 });
  assert.equal((await readdir(join(dir, "b"))).filter((f) => f.startsWith("traces-r")).length, 1, "the batch is on disk");
});

test("logfire(): the region's endpoints from the token, Authorization set to the token, the three signals", TIMEOUT, async () => {
  assert.equal(logfireBaseUrl("pylf_v1_us_abcdef0123"), "https://logfire-us.pydantic.dev");
  assert.equal(logfireBaseUrl("pylf_v1_eu_abcdef0123"), "https://logfire-eu.pydantic.dev");
  assert.equal(logfireBaseUrl("pylf_v2_eu_abcdef0123"), LOGFIRE_BASE_URLS.eu);
  assert.equal(logfireBaseUrl("pylf_v1_ap_abcdef0123"), LOGFIRE_BASE_URLS.us, "an unknown region: US");
  assert.equal(logfireBaseUrl("an-old-style-token"), LOGFIRE_BASE_URLS.us, "no region: US");

  const spans = makeSpans(1);
  const logs = await makeLogs(1);
  const metrics = await makeMetrics(1);
  for (const [token, base] of [
    ["pylf_v1_us_T0kenUS", "https://logfire-us.pydantic.dev"],
    ["pylf_v1_eu_T0kenEU", "https://logfire-eu.pydantic.dev"],
    ["pylf_v1_zz_T0kenZZ", "https://logfire-us.pydantic.dev"],
  ]) {
    const sent = [];
    // A fetch that answers 200 without any network: what would have gone out.
    const fetch = async (url, init) => {
      sent.push({ url, headers: init.headers });
      return new Response("", { status: 200 });
    };
    const { traceExporter, logExporter, metricExporter } = logfire({ token, storage: new MemoryStorage(), fetch, env: {} });
    assert.equal((await exportOnce(traceExporter, spans)).code, ExportResultCode.SUCCESS);
    assert.equal((await exportOnce(logExporter, logs)).code, ExportResultCode.SUCCESS);
    assert.equal((await exportOnce(metricExporter, metrics)).code, ExportResultCode.SUCCESS);
    assert.deepEqual(sent.map((s) => s.url), [`${base}/v1/traces`, `${base}/v1/logs`, `${base}/v1/metrics`]);
    assert.ok(sent.every((s) => s.headers.authorization === token && s.headers["content-type"] === "application/x-protobuf"));
    assert.equal(metricExporter.selectAggregationTemporality("COUNTER"), AggregationTemporality.DELTA, "deltas, as Logfire's SDKs send");
    for (const e of [traceExporter, logExporter, metricExporter]) await e.shutdown();
  }
  // The token from LOGFIRE_TOKEN; the region from LOGFIRE_BASE_URL when set.
  const sent = [];
  const fetch = async (url) => {
    sent.push(url);
    return new Response("", { status: 200 });
  };
  const fromEnv = logfire({ storage: new MemoryStorage(), fetch, env: { LOGFIRE_TOKEN: "pylf_v1_eu_FromEnv" } });
  await exportOnce(fromEnv.traceExporter, spans);
  const based = logfire({ storage: new MemoryStorage(), fetch, env: { LOGFIRE_TOKEN: "pylf_v1_eu_FromEnv", LOGFIRE_BASE_URL: "https://logfire.internal/" } });
  await exportOnce(based.traceExporter, spans);
  assert.deepEqual(sent, ["https://logfire-eu.pydantic.dev/v1/traces", "https://logfire.internal/v1/traces"]);

  assert.throws(() => logfire({ storage: new MemoryStorage(), env: {} }), /option `token` \(a Logfire write token\) is required, or LOGFIRE_TOKEN/);
  assert.throws(() => logfire({ token: "pylf_v1_us_x", storage: new MemoryStorage(), url: "https://elsewhere" }), /use `baseUrl`/);
  assert.throws(() => logfire({ token: "pylf_v1_us_x", baseUrl: "logfire", storage: new MemoryStorage() }), /`baseUrl` must be an absolute http\(s\) URL/);
});

test("logfire(): the token is sent as Authorization but never logged, printed, stored or put in an error", TIMEOUT, async (t) => {
  const { defer, backend } = await setup(t);
  const dir = await tempDir(defer);
  const token = "pylf_v1_eu_S3cretT0kenThatMustNeverBeLogged42";
  const lines = [];
  const captureLogger = { warn: (m) => lines.push(String(m)), error: (m) => lines.push(String(m)) };
  // Everything written to the console while the exporters run.
  const saved = {};
  for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
    saved[level] = console[level];
    console[level] = (...args) => lines.push(args.map((a) => (typeof a === "string" ? a : inspect(a, { depth: 5 }))).join(" "));
  }
  defer(() => Object.assign(console, saved));

  const exporters = logfire({
    token, baseUrl: backend.url, storage: new FileStorage({ dir }), logger: captureLogger, logIntervalMs: 0, ...FAST, timeoutMs: 300,
  });
  const consoleExporters = logfire({ token, baseUrl: backend.url, storage: new MemoryStorage(), logIntervalMs: 0, ...FAST, timeoutMs: 300 });
  defer(() => Promise.all([...Object.values(exporters), ...Object.values(consoleExporters)].map((e) => e.shutdown())));
  const spans = makeSpans(2);
  const results = [];
  const stored = [];
  for (const { traceExporter, logExporter } of [{ ...exporters }, { ...consoleExporters }]) {
    for (const mode of ["ok", "503", "hang", "refuse", "401", "400", "ok"]) {
      await backend.setMode(mode);
      results.push(await exportOnce(traceExporter, spans));
      results.push(await exportOnce(logExporter, await makeLogs(1)));
      for (const file of await readdir(dir)) stored.push(await readFile(join(dir, file)).catch(() => Buffer.alloc(0)));
      await (await traceExporter.retryExporter()).drain();
    }
  }
  await backend.waitFor((b) => b.delivered.length >= 4, { timeoutMs: 10_000, what: "deliveries" });
  for (const r of backend.requests) assert.equal(r.headers.authorization, token, "sent as the Authorization header, as is");
  assert.ok(backend.requests.some((r) => r.path === "/v1/traces") && backend.requests.some((r) => r.path === "/v1/logs"));
  assert.ok(lines.some((l) => /Currently retrying/.test(l)) && lines.some((l) => /status 401/.test(l)),
    `the outage and the rejections were logged: ${lines.join("\n")}`);

  const printed = [
    ...lines,
    ...results.map((r) => `${r.error?.message} ${r.error?.stack} ${inspect(r, { depth: 5 })}`),
    inspect(exporters, { depth: 10, showHidden: true }),
    JSON.stringify(exporters),
    String(exporters.traceExporter),
  ].join("\n");
  assert.ok(!printed.includes(token), "the token appears in no log line, error, or printed exporter");
  assert.ok(!printed.includes("S3cretT0ken"), "not even in part");
  assert.ok(stored.some((bytes) => bytes.length > 0), "records were spooled");
  assert.ok(!Buffer.concat(stored).includes(Buffer.from("S3cretT0ken")), "nor in the spool");
  const errors = [];
  for (const bad of [{ token, baseUrl: "not a url" }, { token, storage: {} }, { token, storage: new MemoryStorage(), maxDelayMs: -1 }]) {
    try {
      logfire(bad);
    } catch (err) {
      errors.push(`${err.message}\n${err.stack}`);
    }
  }
  assert.equal(errors.length, 3);
  assert.ok(!errors.join("\n").includes("S3cretT0ken"), errors.join("\n"));
});
