import type { ScenarioResult } from '../scenarios/common.js';
import type { TopologyName } from '../topologies/types.js';
import { formatNumber, formatRatio } from './report.js';
import { ratio } from './stats.js';

/** The median of one metric, or null when it was not measured. */
export function medianOf(results: readonly ScenarioResult[], scenario: string, variant: string, topology: TopologyName, key: string): number | null {
  const r = results.find((s) => s.name === scenario);
  const v = r?.groups[variant]?.[topology]?.[key]?.median;
  return v === undefined || !Number.isFinite(v) ? null : v;
}

/** weft's median over `other`'s for one metric. */
export function weftOver(results: readonly ScenarioResult[], scenario: string, variant: string, key: string, other: TopologyName = 'nginx'): number | null {
  const a = medianOf(results, scenario, variant, 'weft', key);
  const b = medianOf(results, scenario, variant, other, key);
  if (b !== null && b <= 0) return null;
  return ratio(a, b);
}

/** One goal of issue 3 and how this run did against it. */
export interface GoalResult {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  /** null: not measured in this run. */
  readonly met: boolean | null;
}

function check(value: number | null, op: '>=' | '<=', limit: number): boolean | null {
  if (value === null) return null;
  return op === '>=' ? value >= limit : value <= limit;
}

/** Evaluates the hot-path goals of issue 3 against the medians of this run. */
export function evaluateGoals(results: readonly ScenarioResult[]): GoalResult[] {
  const goals: GoalResult[] = [];
  const rel = (goal: string, scenario: string, variant: string, key: string, op: '>=' | '<=', limit: number, extra = '') => {
    const r = weftOver(results, scenario, variant, key);
    goals.push({ goal, target: `${op === '>=' ? '≥' : '≤'} ${limit.toFixed(2)}x nginx`, measured: `${formatRatio(r)}${extra}`, met: check(r, op, limit) });
  };
  rel('L7 saturation (req/s, GET /small)', 'mesh', '/small', 'rps', '>=', 0.75);
  rel('L7 CPU per request (A + B, GET /small)', 'mesh', '/small', 'cpuPerReqPair', '<=', 2.0);
  {
    const w = medianOf(results, 'latency', 'rate', 'weft', 'addedp99Us');
    const n = medianOf(results, 'latency', 'rate', 'nginx', 'addedp99Us');
    const r = weftOver(results, 'latency', 'rate', 'addedp99Us');
    goals.push({
      goal: 'added p99 at 1,000 req/s',
      target: '≤ 1.50x nginx',
      measured: w === null || n === null ? '—' : `${formatRatio(r)} (weft +${formatNumber(w)} µs, nginx +${formatNumber(n)} µs)`,
      met: check(r, '<=', 1.5),
    });
  }
  {
    const raw = weftOver(results, 'l4', '/small', 'rps');
    rel('L4 throughput per core (req per proxy CPU-second)', 'l4', '/small', 'reqPerCpuS', '>=', 1.0, raw === null ? '' : ` (raw req/s: ${formatRatio(raw)})`);
  }
  const perSidecar = (key: string) => {
    const a = medianOf(results, 'latency', 'rate', 'weft', `${key}A`);
    const b = medianOf(results, 'latency', 'rate', 'weft', `${key}B`);
    return a === null && b === null ? null : Math.max(a ?? 0, b ?? 0);
  };
  const vcpu = perSidecar('vcpu');
  goals.push({ goal: 'vCPU per sidecar at 1,000 req/s (the busier of web, api)', target: '≤ 0.12', measured: vcpu === null ? '—' : formatNumber(vcpu, 3), met: check(vcpu, '<=', 0.12) });
  const rss = perSidecar('rssMb');
  goals.push({ goal: 'RSS per sidecar at 1,000 req/s (the larger)', target: '≤ 64 MB', measured: rss === null ? '—' : `${formatNumber(rss, 1)} MB`, met: check(rss, '<=', 64) });
  const idle = medianOf(results, 'startup', 'start', 'weft', 'idleRssMb');
  goals.push({ goal: 'idle RSS (api sidecar, 1 s after ready)', target: '≤ 50 MB', measured: idle === null ? '—' : `${formatNumber(idle, 1)} MB`, met: check(idle, '<=', 50) });
  const ready = medianOf(results, 'startup', 'start', 'weft', 'readyMs');
  const readyMin = results.find((s) => s.name === 'startup')?.groups['start']?.weft?.['readyMs']?.min ?? null;
  goals.push({
    goal: 'start to ready (self-issued certificate)',
    target: '≤ 300 ms',
    measured: ready === null ? '—' : `${formatNumber(ready)} ms median${readyMin !== null ? `, ${formatNumber(readyMin)} ms min` : ''}`,
    met: check(ready, '<=', 300),
  });
  rel('handshake CPU (full mTLS handshake at B)', 'churn', 'churn', 'hsCpuUs', '<=', 1.2);
  return goals;
}

/** A ratio shown in the chart. */
export interface ChartMetric {
  readonly label: string;
  readonly better: 'higher' | 'lower';
  readonly nginx: number | null;
  readonly haproxy: number | null;
  /** The issue's goal for weft / nginx, if any. */
  readonly goal: number | null;
}

/** The main weft / nginx and weft / HAProxy ratios for the chart. */
export function chartMetrics(results: readonly ScenarioResult[]): ChartMetric[] {
  const m = (label: string, better: 'higher' | 'lower', scenario: string, variant: string, key: string, goal: number | null = null): ChartMetric => ({
    label,
    better,
    nginx: weftOver(results, scenario, variant, key, 'nginx'),
    haproxy: weftOver(results, scenario, variant, key, 'haproxy'),
    goal,
  });
  return [
    m('L7 req/s, /small', 'higher', 'mesh', '/small', 'rps', 0.75),
    m('L7 req/s, /1k', 'higher', 'mesh', '/1k', 'rps'),
    m('L7 CPU/req (pair), /small', 'lower', 'mesh', '/small', 'cpuPerReqPair', 2.0),
    m('added p99 @ 1k req/s', 'lower', 'latency', 'rate', 'addedp99Us', 1.5),
    m('added p50 @ 1k req/s', 'lower', 'latency', 'rate', 'addedp50Us'),
    m('L4 req/s', 'higher', 'l4', '/small', 'rps'),
    m('L4 req per CPU-second', 'higher', 'l4', '/small', 'reqPerCpuS', 1.0),
    m('bulk Gbit/s', 'higher', 'bulk', 'stream', 'gbps'),
    m('bulk CPU s/GiB (pair)', 'lower', 'bulk', 'stream', 'cpuSPerGibPair'),
    m('handshake CPU (full)', 'lower', 'churn', 'churn', 'hsCpuUs', 1.2),
    m('start → ready', 'lower', 'startup', 'start', 'readyMs'),
    m('idle RSS', 'lower', 'startup', 'start', 'idleRssMb'),
  ].filter((x) => x.nginx !== null || x.haproxy !== null);
}
