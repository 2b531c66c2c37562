/**
 * An example Worker: accepts telemetry on POST /v1/traces and exports it through
 * export-retry; GET /stats shows the spool objects' figures. Nothing here routes a
 * request to the spool object itself: only this code's RPC calls reach it.
 *
 * Configuration (wrangler.toml [vars] and secrets): OTEL_EXPORTER_OTLP_ENDPOINT,
 * OTEL_EXPORTER_OTLP_HEADERS (a secret: `Authorization=Bearer%20...`),
 * EXPORT_RETRY_OPTIONS (JSON), EXPORT_RETRY_SHARDS.
 */
import { SpoolObject, createWorkersExporter, optionsFromEnv } from "export-retry/workers";

export { SpoolObject };

function exporterFor(env) {
  return createWorkersExporter(env.EXPORT_SPOOL, { ...optionsFromEnv(env), shards: Number(env.EXPORT_RETRY_SHARDS ?? 1) });
}

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (request.method === "POST" && pathname === "/v1/traces") {
      const body = new Uint8Array(await request.arrayBuffer());
      const contentType = request.headers.get("content-type") ?? "application/x-protobuf";
      const done = exporterFor(env).export(body, { contentType });
      ctx.waitUntil(done);
      // A real Worker answers at once and lets waitUntil finish the export; this
      // example waits so that callers (and the tests) see the outcome.
      return Response.json(await done);
    }
    if (request.method === "GET" && pathname === "/stats") {
      return Response.json(await exporterFor(env).spoolStats());
    }
    return new Response("not found\n", { status: 404 });
  },
};
