import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { startBackend } from "../support/backend.js";

async function backendFor(t) {
  const backend = await startBackend();
  t.after(() => backend.close());
  return backend;
}

const post = (backend, body = "x", init = {}) =>
  fetch(`${backend.url}/v1/traces`, { method: "POST", body, ...init });

test("ok: 200, request recorded byte-identical, counted as delivered", async (t) => {
  const backend = await backendFor(t);
  assert.match(backend.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const body = randomBytes(64 * 1024);
  const res = await post(backend, body, { headers: { "Content-Type": "application/x-protobuf", "X-Custom": "v" } });
  assert.equal(res.status, 200);
  assert.equal(res.ok, true);
  await res.arrayBuffer();
  assert.equal(backend.requests.length, 1);
  const [req] = backend.requests;
  assert.equal(req.method, "POST");
  assert.equal(req.path, "/v1/traces");
  assert.equal(req.headers["content-type"], "application/x-protobuf");
  assert.equal(req.headers["x-custom"], "v");
  assert.ok(Buffer.isBuffer(req.body) && req.body.equals(body));
  assert.equal(typeof req.at, "number");
  assert.equal(req.mode, "ok");
  assert.deepEqual(backend.delivered, [req]);
  assert.deepEqual(backend.counts, { total: 1, byMode: { ok: 1 } });
});

test("status modes: 503, object 200, shorthand strings", async (t) => {
  const backend = await backendFor(t);
  await backend.setMode("503");
  const res = await post(backend);
  assert.equal(res.status, 503);
  await res.text();
  assert.equal(res.headers.get("retry-after"), null);
  await backend.setMode({ status: 202 });
  assert.equal((await post(backend)).status, 202);
  assert.deepEqual(backend.counts, { total: 2, byMode: { 503: 1, 202: 1 } });
  assert.deepEqual(backend.delivered.map((r) => r.mode), ["202"]);
});

test("429 with Retry-After in seconds and as an HTTP date", async (t) => {
  const backend = await backendFor(t);
  const date = new Date(Date.now() + 5000).toUTCString();
  backend.enqueue({ status: 503, retryAfter: date });
  await backend.setMode({ status: 429, retryAfter: "2" });
  const first = await post(backend);
  assert.equal(first.status, 503);
  assert.equal(first.headers.get("retry-after"), date);
  const second = await post(backend);
  assert.equal(second.status, 429);
  assert.equal(second.headers.get("retry-after"), "2");
  assert.equal(backend.delivered.length, 0);
});

test("refuse: ECONNREFUSED, then listening again on the same port", async (t) => {
  const backend = await backendFor(t);
  const url = backend.url;
  await backend.setMode("refuse");
  await assert.rejects(post(backend), (err) => err.cause?.code === "ECONNREFUSED");
  assert.equal(backend.requests.length, 0);
  await backend.setMode("ok");
  assert.equal(backend.url, url);
  assert.equal((await post(backend)).status, 200);
  assert.equal(backend.requests.length, 1);
});

test("refuse drops existing keep-alive connections too", async (t) => {
  const backend = await backendFor(t);
  await (await post(backend)).text(); // leaves a pooled keep-alive connection
  await backend.setMode("refuse");
  await assert.rejects(post(backend), TypeError);
  await backend.setMode("ok");
  assert.equal((await post(backend)).status, 200);
  assert.deepEqual(backend.counts, { total: 2, byMode: { ok: 2 } });
});

test("hang: never answers; the client times out; close() ends hung sockets", async (t) => {
  const backend = await backendFor(t);
  await backend.setMode("hang");
  await assert.rejects(post(backend, "a", { signal: AbortSignal.timeout(200) }),
    (err) => err.name === "TimeoutError" || err.name === "AbortError");
  const pending = post(backend, "b");
  pending.catch(() => {}); // observed below
  await backend.waitFor((b) => b.requests.length === 2, { what: "both hung requests" });
  assert.deepEqual(backend.requests.map((r) => [r.mode, r.body.toString()]), [["hang", "a"], ["hang", "b"]]);
  await backend.close();
  await assert.rejects(pending, TypeError);
});

test("reset: the fetch or its body read fails", async (t) => {
  const backend = await backendFor(t);
  await backend.setMode("reset");
  await assert.rejects(async () => {
    const res = await post(backend, "payload");
    await res.arrayBuffer();
  });
  await backend.waitFor((b) => b.counts.byMode.reset === 1, { what: "reset request" });
  assert.equal(backend.requests[0].body.toString(), "payload");
  assert.equal(backend.delivered.length, 0);
});

test("enqueue: one-shot modes in order, then the default", async (t) => {
  const backend = await backendFor(t);
  await backend.setMode("500");
  backend.enqueue("503", { status: 429, retryAfter: "1" }, "ok", "400");
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const res = await post(backend, String(i));
    statuses.push(res.status);
    await res.text();
  }
  assert.deepEqual(statuses, [503, 429, 200, 400, 500]);
  assert.deepEqual(backend.requests.map((r) => r.mode), ["503", "429", "ok", "400", "500"]);
  assert.deepEqual(backend.delivered.map((r) => r.body.toString()), ["2"]);
});

test("invalid modes throw TypeError; refuse cannot be enqueued", async (t) => {
  const backend = await backendFor(t);
  assert.throws(() => backend.enqueue("refuse"), TypeError);
  assert.throws(() => backend.enqueue("503", "bogus"), TypeError);
  assert.throws(() => backend.setMode({ status: 99 }), TypeError);
  assert.throws(() => backend.setMode("slow"), TypeError);
  assert.equal((await post(backend)).status, 200); // nothing half-applied
});

test("reset() forgets requests but keeps the mode", async (t) => {
  const backend = await backendFor(t);
  await backend.setMode("503");
  await (await post(backend)).text();
  backend.reset();
  assert.deepEqual(backend.counts, { total: 0, byMode: {} });
  assert.equal((await post(backend)).status, 503);
  assert.equal(backend.requests.length, 1);
});

test("waitFor resolves with the predicate's value and rejects with `what` and counts at the deadline", async (t) => {
  const backend = await backendFor(t);
  const requestSoon = post(backend).then((res) => res.text());
  const found = await backend.waitFor((b) => b.delivered[0], { what: "a delivery" });
  assert.equal(found.mode, "ok");
  await requestSoon;
  await assert.rejects(
    backend.waitFor((b) => b.requests.length > 5, { timeoutMs: 50, what: "six requests" }),
    (err) => err instanceof Error && /six requests/.test(err.message) && /"total":1/.test(err.message),
  );
});
