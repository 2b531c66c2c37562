/**
 * Recovery: time to deliver a spooled backlog once the endpoint comes back.
 *
 * export-retry: N exports of 10 KiB are spooled to FileStorage during a 503 outage;
 * the clock starts when the endpoint is switched back to "ok", at which moment one new
 * export arrives (production traffic does not stop: it is the probe that tells the
 * engine the backend is back); it stops at the backend's last delivery of the backlog.
 *
 * Logfire: a fresh DiskRetryer gets M bodies of 10 KiB (as `post` hands them over); once
 * its thread has made its first (failed) attempt, the endpoint is switched back, and
 * the clock stops at its last delivery. Its drain sleeps 0.2-0.4 s before every item,
 * so M is smaller than N; its time for N is extrapolated as the wait for its first
 * delivery plus (N - 1) times its median gap between deliveries (it sends strictly one
 * at a time, so the gap is per item and does not depend on the backlog).
 *
 * The floor: a bare fetch loop POSTing N bodies of 10 KiB, one at a time and four at
 * a time (the drain's default concurrency).
 */
import { createExporter } from "export-retry";
import { FileStorage } from "export-retry/node";
import { barePost, deliveredOn, payload, quietLogger, removeDir, tempDir, until } from "./common.js";
import { median, summary } from "./stats.js";

const SIZE = 10 * 1024;

export async function recovery({ backend, logfire, quick, progress }) {
  const rounds = quick ? 1 : 3;
  const n = quick ? 300 : 1000;
  const m = quick ? 8 : 20;
  const body = payload(SIZE);
  const er = [];
  const lf = [];
  const floor = { sequential: [], concurrent4: [] };
  for (let r = 0; r < rounds; r++) {
    progress(`recovery round ${r + 1}/${rounds}: export-retry backlog ${n}`);
    er.push(await exportRetryRound(backend, body, n, r));
    progress(`recovery round ${r + 1}/${rounds}: bare fetch floor, ${n} POSTs sequential and 4 at a time`);
    floor.sequential.push(await floorRound(backend, body, n, 1, `/v1/traces/floor1-${r}`));
    floor.concurrent4.push(await floorRound(backend, body, n, 4, `/v1/traces/floor4-${r}`));
    if (logfire) {
      progress(`recovery round ${r + 1}/${rounds}: Logfire DiskRetryer backlog ${m}`);
      lf.push(await logfireRound(backend, logfire, m, r));
    }
  }
  const erTotal = median(er.map((x) => x.totalMs));
  const result = {
    size: SIZE,
    backlog: n,
    rounds,
    exportRetry: {
      runs: er,
      totalMs: erTotal,
      perSecond: n / (erTotal / 1000),
      firstDeliveryMs: median(er.map((x) => x.firstDeliveryMs)),
    },
    floor: {
      sequentialPerSecond: median(floor.sequential),
      concurrent4PerSecond: median(floor.concurrent4),
    },
  };
  if (logfire) {
    const gaps = lf.flatMap((x) => x.gaps);
    const gap = median(gaps);
    const firstWait = median(lf.map((x) => x.firstDeliveryMs));
    const extrapolated = firstWait + (n - 1) * gap;
    result.logfire = {
      backlog: m,
      runs: lf,
      measuredTotalMs: median(lf.map((x) => x.totalMs)),
      measuredPerSecond: m / (median(lf.map((x) => x.totalMs)) / 1000),
      gap: summary(gaps),
      firstDeliveryMs: firstWait,
      extrapolatedTotalMs: extrapolated,
      extrapolatedPerSecond: n / (extrapolated / 1000),
    };
    result.speedup = extrapolated / erTotal;
  }
  await backend.setMode("ok");
  backend.reset();
  return result;
}

async function exportRetryRound(backend, body, n, r) {
  const path = `/v1/traces/er-recovery-${r}`;
  await backend.setMode("503");
  backend.reset();
  const dir = await tempDir("recovery");
  const exporter = await createExporter({ endpoint: `${backend.url}${path}`, storage: new FileStorage({ dir }), logger: quietLogger() });
  try {
    const fillStart = performance.now();
    const first = await exporter.export(body); // two attempts 1 s apart, then spooled: the backoff starts
    if (first.outcome !== "spooled") throw new Error(`recovery: the first export was ${first.outcome}`);
    for (let i = 1; i < n; i += 50) {
      const batch = await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => exporter.export(body)));
      const bad = batch.find((x) => x.outcome !== "spooled");
      if (bad) throw new Error(`recovery: an export was ${bad.outcome}`);
    }
    const fillMs = performance.now() - fillStart;
    if (exporter.stats().queued !== n) throw new Error(`recovery: spool holds ${exporter.stats().queued}, expected ${n}`);
    const failedDrainAttempts = backend.requests.filter((x) => x.path === path).length;
    backend.reset();
    const t0 = Date.now();
    await backend.setMode("ok");
    const probe = await exporter.export(new Uint8Array(16)); // new traffic: the probe
    await until(() => deliveredOn(backend, path).filter((x) => x.body.length === SIZE).length >= n && exporter.stats().queued === 0, {
      timeoutMs: 120_000, what: `the delivery of ${n} spooled exports`,
    });
    const backlog = deliveredOn(backend, path).filter((x) => x.body.length === SIZE);
    const totalMs = Math.max(1, backlog.at(-1).at - t0);
    return {
      totalMs,
      firstDeliveryMs: backlog[0].at - t0,
      perSecond: n / (totalMs / 1000),
      fillMs,
      probe: probe.outcome,
      requestsDuringOutage: failedDrainAttempts,
      duplicates: backlog.length - n,
    };
  } finally {
    await exporter.shutdown();
    await removeDir(dir);
  }
}

async function floorRound(backend, body, n, concurrency, path) {
  await backend.setMode("ok");
  backend.reset();
  const url = `${backend.url}${path}`;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++;
      const status = await barePost(url, body);
      if (status !== 200) throw new Error(`floor: status ${status}`);
    }
  }));
  const ms = performance.now() - t0;
  backend.reset();
  return n / (ms / 1000);
}

async function logfireRound(backend, logfire, m, r) {
  const path = `/v1/traces/lf-recovery-${r}`;
  await backend.setMode("503");
  backend.reset();
  await logfire.call("fill", { url: `${backend.url}${path}`, size: SIZE, m });
  // Its thread sleeps 1-2 s, then makes its first attempt; the outage has been seen.
  await until(() => backend.requests.some((x) => x.path === path), { timeoutMs: 30_000, what: "Logfire's first retry attempt" });
  backend.reset();
  const t0 = Date.now();
  await backend.setMode("ok");
  await until(() => deliveredOn(backend, path).length >= m, { timeoutMs: 30_000 + m * 1000, intervalMs: 10, what: `Logfire's delivery of ${m} exports` });
  const got = deliveredOn(backend, path);
  const state = await logfire.call("retryer_state");
  await logfire.call("close_filled");
  const gaps = got.slice(1).map((x, i) => x.at - got[i].at);
  const totalMs = got.at(-1).at - t0;
  return { totalMs, firstDeliveryMs: got[0].at - t0, gaps, perSecond: m / (totalMs / 1000), left: state };
}
