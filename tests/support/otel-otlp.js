/**
 * Decodes what the loopback backend received as OTLP, for the export-retry/otel
 * tests, with a decoder independent of the encoder under test: the protobufjs code
 * generated from the OpenTelemetry .proto files that
 * `@opentelemetry/otlp-transformer@0.57.2` shipped (installed under the alias
 * `otlp-proto-decoder`), and `JSON.parse` for http/json. gzip bodies
 * (`content-encoding: gzip`) are gunzipped first.
 */
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";

const require = createRequire(import.meta.url);
const { opentelemetry } = require("otlp-proto-decoder/build/src/generated/root.js");

const collector = opentelemetry.proto.collector;
const REQUESTS = {
  traces: collector.trace.v1.ExportTraceServiceRequest,
  logs: collector.logs.v1.ExportLogsServiceRequest,
  metrics: collector.metrics.v1.ExportMetricsServiceRequest,
};

/** The request as a plain object in OTLP/JSON shape (ids as hex, 64-bit integers as strings). */
export function decodeRequest(signal, request) {
  let body = request.body;
  if (request.headers["content-encoding"] === "gzip") body = gunzipSync(body);
  if (String(request.headers["content-type"]).startsWith("application/json")) {
    return JSON.parse(body.toString("utf8"));
  }
  const type = REQUESTS[signal];
  const message = type.decode(body);
  const object = type.toObject(message, { longs: String, bytes: String, oneofs: false, defaults: false });
  return hexIds(object);
}

/** protobufjs renders bytes as base64; OTLP/JSON (and these tests) use hex ids. */
function hexIds(value) {
  if (Array.isArray(value)) return value.map(hexIds);
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = (key === "traceId" || key === "spanId" || key === "parentSpanId") && typeof v === "string"
      ? Buffer.from(v, "base64").toString("hex")
      : hexIds(v);
  }
  return out;
}

function anyValue(value) {
  if (value === undefined || value === null) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.boolValue !== undefined) return value.boolValue;
  return value;
}

function attributes(list) {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, anyValue(kv.value)]));
}

/** `{ spanId, traceId, name, attributes, resource }` of every span in the requests. */
export function spansOf(requests) {
  const out = [];
  for (const request of requests) {
    for (const rs of decodeRequest("traces", request).resourceSpans ?? []) {
      const resource = attributes(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          out.push({ spanId: s.spanId, traceId: s.traceId, name: s.name, attributes: attributes(s.attributes), resource });
        }
      }
    }
  }
  return out;
}

/** `{ body, attributes }` of every log record in the requests. */
export function logsOf(requests) {
  const out = [];
  for (const request of requests) {
    for (const rl of decodeRequest("logs", request).resourceLogs ?? []) {
      for (const sl of rl.scopeLogs ?? []) {
        for (const r of sl.logRecords ?? []) out.push({ body: anyValue(r.body), attributes: attributes(r.attributes) });
      }
    }
  }
  return out;
}

/** `{ name, attributes, value, temporality }` of every sum or gauge data point in the requests. */
export function metricPointsOf(requests) {
  const out = [];
  for (const request of requests) {
    for (const rm of decodeRequest("metrics", request).resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const data = m.sum ?? m.gauge;
          for (const p of data?.dataPoints ?? []) {
            out.push({
              name: m.name,
              attributes: attributes(p.attributes),
              value: p.asInt !== undefined ? Number(p.asInt) : p.asDouble,
              temporality: m.sum?.aggregationTemporality,
            });
          }
        }
      }
    }
  }
  return out;
}
