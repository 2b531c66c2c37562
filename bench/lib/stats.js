/** Small statistics and formatting helpers for the benchmarks. */

export function sorted(values) {
  return [...values].sort((a, b) => a - b);
}

/** The q-quantile (0..1) by linear interpolation; NaN for no values. */
export function quantile(values, q) {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

export const median = (values) => quantile(values, 0.5);

/** `{ n, median, p10, p90, min, max }` of a sample list (ms or whatever unit it has). */
export function summary(values) {
  return {
    n: values.length,
    median: round(median(values)),
    p10: round(quantile(values, 0.1)),
    p90: round(quantile(values, 0.9)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

/** Rounds to 4 significant decimals for JSON (keeps small figures readable). */
export function round(x, digits = 4) {
  if (!Number.isFinite(x)) return x;
  const abs = Math.abs(x);
  const d = abs >= 100 ? 1 : abs >= 1 ? 3 : digits + Math.max(0, -Math.floor(Math.log10(abs || 1)) - 1);
  return Number(x.toFixed(Math.min(d, 8)));
}

/** Milliseconds for humans: 0.482 ms, 12.3 ms, 1.23 s. */
export function ms(x) {
  if (!Number.isFinite(x)) return String(x);
  if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
  if (x >= 100) return `${x.toFixed(0)} ms`;
  if (x >= 10) return `${x.toFixed(1)} ms`;
  if (x >= 1) return `${x.toFixed(2)} ms`;
  if (x >= 0.1) return `${x.toFixed(3)} ms`;
  return `${(x * 1000).toFixed(1)} µs`;
}

export function bytes(n) {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export function rate(perSecond) {
  if (!Number.isFinite(perSecond)) return String(perSecond);
  if (perSecond >= 100) return `${perSecond.toFixed(0)}/s`;
  if (perSecond >= 10) return `${perSecond.toFixed(1)}/s`;
  return `${perSecond.toFixed(2)}/s`;
}

/** Runs `arms` (name -> async fn) `n` times each, interleaved, rotating the order every
 * iteration so none always goes first; `warmup` rounds first, unrecorded.
 * `between(i)` runs after every round (untimed). Returns name -> samples (ms). */
export async function interleave(arms, { n, warmup = 0, between } = {}) {
  const names = Object.keys(arms);
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < warmup + n; i++) {
    const rot = i % names.length;
    const order = [...names.slice(rot), ...names.slice(0, rot)];
    for (const name of order) {
      const t0 = performance.now();
      await arms[name](i);
      const dt = performance.now() - t0;
      if (i >= warmup) samples[name].push(dt);
    }
    if (between) await between(i);
  }
  return samples;
}
