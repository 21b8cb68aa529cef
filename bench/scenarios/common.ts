import type { BenchContext } from '../lib/context.js';
import { ticksToUs } from '../lib/context.js';
import { cpuTicks, memory } from '../lib/procs.js';
import type { TableSpec, RowValues } from '../lib/report.js';
import { aggregate } from '../lib/stats.js';
import type { ProxyProcess, RunningTopology, TopologyName } from '../topologies/types.js';

/** One measurement: a topology in one run of one variant (e.g. a path, a mode). */
export interface Sample {
  readonly variant: string;
  readonly run: number;
  readonly topology: TopologyName;
  readonly metrics: Record<string, number>;
}

/** Medians and spreads by variant, topology and metric. */
export type Groups = Record<string, Partial<Record<TopologyName, RowValues>>>;

/** What a scenario returns to the runner. */
export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  /** Markdown paragraph: what was measured and how. */
  readonly intro: string;
  readonly tables: readonly TableSpec[];
  readonly samples: readonly Sample[];
  readonly groups: Groups;
  readonly notes: readonly string[];
}

/** A scenario: runs its topologies interleaved and returns tables. */
export type Scenario = (ctx: BenchContext) => Promise<ScenarioResult>;

/** Aggregates samples into {@link Groups}. */
export function groupSamples(samples: readonly Sample[]): Groups {
  const byKey = new Map<string, Map<TopologyName, Map<string, number[]>>>();
  for (const s of samples) {
    let v = byKey.get(s.variant);
    if (!v) byKey.set(s.variant, (v = new Map()));
    let t = v.get(s.topology);
    if (!t) v.set(s.topology, (t = new Map()));
    for (const [k, value] of Object.entries(s.metrics)) {
      let list = t.get(k);
      if (!list) t.set(k, (list = []));
      list.push(value);
    }
  }
  const groups: Groups = {};
  for (const [variant, topologies] of byKey) {
    const entry: Partial<Record<TopologyName, RowValues>> = {};
    for (const [topology, metrics] of topologies) {
      const row: Record<string, ReturnType<typeof aggregate>> = {};
      for (const [k, values] of metrics) row[k] = aggregate(values);
      entry[topology] = row;
    }
    groups[variant] = entry;
  }
  return groups;
}

/** CPU clock ticks of every proxy process, by role. */
export function readTicks(proxies: readonly ProxyProcess[]): Map<'A' | 'B', number> {
  const m = new Map<'A' | 'B', number>();
  for (const p of proxies) m.set(p.role, cpuTicks(p.pid));
  return m;
}

/**
 * Adds, for each proxy role R, `cpuUsR` (CPU µs spent since `before`) and `rssMbR` / `hwmMbR`
 * (resident and peak resident memory now, MB = 10^6 bytes) to `metrics`; returns the CPU µs by role.
 */
export function addProxyUsage(ctx: BenchContext, proxies: readonly ProxyProcess[], before: Map<'A' | 'B', number>, metrics: Record<string, number>): Map<'A' | 'B', number> {
  const used = new Map<'A' | 'B', number>();
  for (const p of proxies) {
    const us = ticksToUs(ctx, cpuTicks(p.pid) - (before.get(p.role) ?? 0));
    used.set(p.role, us);
    const mem = memory(p.pid);
    metrics[`cpuUs${p.role}`] = us;
    metrics[`rssMb${p.role}`] = mem.rss / 1e6;
    metrics[`hwmMb${p.role}`] = mem.hwm / 1e6;
  }
  return used;
}

/** Throws (with the process name) when a proxy of the topology is no longer running. */
export function assertAlive(t: RunningTopology): void {
  for (const p of t.proxies) {
    try {
      cpuTicks(p.pid);
    } catch {
      throw new Error(`${t.name}: proxy ${p.role} (${p.name}, pid ${p.pid}) is not running; see its log under logs/`);
    }
  }
}

/** "1.2 s" style duration text for intros. */
export function seconds(s: number): string {
  return `${s % 1 === 0 ? s : s.toFixed(1)} s`;
}
