// Number and time formatting shared by the pages and the graph.

/** @param {number} n requests or connections per second */
export function rate(n) {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** @param {number | null} r 0–1 or null */
export function percent(r) {
  return r === null ? '–' : `${(r * 100).toFixed(r === 1 ? 0 : 1)}%`;
}

/** @param {number | null} ms */
export function millis(ms) {
  if (ms === null) return '–';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** @param {number} n bytes per second */
export function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

/** @param {number} ms a duration, possibly negative (expired) */
export function timeLeft(ms) {
  if (ms <= 0) return `expired ${duration(-ms)} ago`;
  return duration(ms);
}

/** @param {number} ms */
export function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** An edge's figures as one label: HTTP `rps · success · p50 · p99`, TCP `conn/s · bytes/s`. */
export function edgeLabel(e) {
  if (e.protocol === 'tcp') return `${rate(e.connectionsPerSecond)} conn/s · ${bytes(e.bytesPerSecond)}/s`;
  return `${rate(e.requestsPerSecond)} rps · ${percent(e.successRate)} · p50 ${millis(e.p50Ms)} · p99 ${millis(e.p99Ms)}`;
}

/** The mTLS mode as shown: strict, strict (dry run), permissive, or – when unknown. */
export function mtlsText(m) {
  if (m === null || m === undefined) return '–';
  if (typeof m === 'string') return m;
  return m.mode === 'strict' && m.enforce === false ? 'strict (dry run)' : m.mode;
}
