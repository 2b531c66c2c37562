/**
 * An example Worker instrumented with @pydantic/otel-cf-workers whose spans are
 * exported through export-retry: a batch that cannot be delivered is handed to the
 * SpoolObject Durable Object and delivered from its alarm once the backend is back.
 *
 *   GET /work?tag=T   answers "ok"; its trace has the fetch handler's span and a
 *                     "work" span with the attribute example.tag = T
 *   GET /stats        the spool objects' figures
 *
 * Configuration (examples/otel-wrangler.toml [vars] and secrets): the OpenTelemetry
 * variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS as a secret,
 * OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_PROTOCOL) and EXPORT_RETRY_OPTIONS
 * (JSON of export-retry's numeric options), read by the request path and by the
 * SpoolObject alike. Or LOGFIRE_TOKEN (a secret) to send to Logfire.
 */
import { instrument } from "@pydantic/otel-cf-workers";
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter, SpoolObject, logfire } from "export-retry/otel";

export { SpoolObject };

/** export-retry's numeric options from EXPORT_RETRY_OPTIONS (as the SpoolObject reads them). */
function retryOptions(env) {
  return env.EXPORT_RETRY_OPTIONS ? JSON.parse(env.EXPORT_RETRY_OPTIONS) : {};
}

function exporter(env) {
  if (env.LOGFIRE_TOKEN) return logfire({ token: env.LOGFIRE_TOKEN, spool: env.EXPORT_SPOOL, env, ...retryOptions(env) }).traceExporter;
  return new OTLPTraceExporter({ spool: env.EXPORT_SPOOL, env, ...retryOptions(env) });
}

const handler = {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/work") {
      trace.getTracer("example").startActiveSpan("work", (span) => {
        span.setAttribute("example.tag", url.searchParams.get("tag") ?? "");
        span.end();
      });
      return new Response("ok\n");
    }
    if (url.pathname === "/stats") {
      const retry = await exporter(env).retryExporter();
      return Response.json(await retry.spoolStats());
    }
    return new Response("not found\n", { status: 404 });
  },
};

export default instrument(handler, (env) => ({
  exporter: exporter(env),
  service: { name: "export-retry-otel-example" },
}));
