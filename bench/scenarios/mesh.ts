import type { BenchContext } from '../lib/context.js';
import type { Column, TableSpec } from '../lib/report.js';
import { runWrk } from '../lib/wrk.js';
import { startAll, stopAll } from '../topologies/index.js';
import type { RunningTopology } from '../topologies/types.js';
import { addProxyUsage, assertAlive, groupSamples, readTicks, seconds, type Sample, type ScenarioResult } from './common.js';

/** Connections wrk keeps open (closed loop, keep-alive). */
export const WRK_CONNECTIONS = 32;

/**
 * Runs wrk against `topology.url + path` and returns the metrics of one sample: req/s,
 * errors, wrk's closed-loop p50/p99, and per proxy CPU µs per request and RSS.
 */
export async function wrkSample(ctx: BenchContext, topology: RunningTopology, path: string, durationS: number): Promise<Record<string, number>> {
  assertAlive(topology);
  const before = readTicks(topology.proxies);
  const r = await runWrk({ url: `${topology.url}${path}`, connections: WRK_CONNECTIONS, durationS, cpus: ctx.pin.client, scriptDir: ctx.work });
  const metrics: Record<string, number> = { rps: r.rps, requests: r.requests, errors: r.errors, wrkP50Us: r.latencyUs.p50, wrkP99Us: r.latencyUs.p99 };
  const used = addProxyUsage(ctx, topology.proxies, before, metrics);
  if (topology.proxies.length > 0 && r.requests > 0) {
    const a = used.get('A') ?? 0;
    const b = used.get('B') ?? 0;
    metrics['cpuPerReqA'] = a / r.requests;
    metrics['cpuPerReqB'] = b / r.requests;
    metrics['cpuPerReqPair'] = (a + b) / r.requests;
    metrics['reqPerCpuS'] = a + b > 0 ? r.requests / ((a + b) / 1e6) : Number.NaN;
  }
  return metrics;
}

/** Columns shared by the keep-alive saturation tables (mesh and l4). */
export const SATURATION_COLUMNS: readonly Column[] = [
  { key: 'rps', label: 'req/s', vsDirect: true },
  { key: 'cpuPerReqA', label: 'CPU µs/req A', digits: 1 },
  { key: 'cpuPerReqB', label: 'CPU µs/req B', digits: 1 },
  { key: 'cpuPerReqPair', label: 'CPU µs/req pair', digits: 1 },
  { key: 'rssMbA', label: 'RSS MB A', digits: 1 },
  { key: 'rssMbB', label: 'RSS MB B', digits: 1 },
  { key: 'hwmMbA', label: 'peak RSS MB A', digits: 1 },
  { key: 'hwmMbB', label: 'peak RSS MB B', digits: 1 },
];

/** Notes on errors seen in any sample. */
export function errorNotes(samples: readonly Sample[]): string[] {
  return samples.filter((s) => (s.metrics['errors'] ?? 0) > 0).map((s) => `${s.topology} ${s.variant} run ${s.run}: ${s.metrics['errors']} errors (socket errors or non-2xx)`);
}

/** Warm-up: one unmeasured wrk run per topology (JIT, pools, TLS sessions). */
export async function warmUp(ctx: BenchContext, topologies: readonly RunningTopology[], path: string): Promise<void> {
  if (ctx.warmupS <= 0) return;
  for (const t of topologies) {
    ctx.log(`warm-up ${t.name} ${path} ${ctx.warmupS} s`);
    await runWrk({ url: `${t.url}${path}`, connections: WRK_CONNECTIONS, durationS: ctx.warmupS, cpus: ctx.pin.client, scriptDir: ctx.work });
  }
}

/** Scenarios 1 and 2: the mesh tax at saturation, HTTP/1.1 keep-alive, /small and /1k. */
export async function meshScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const paths = ['/small', '/1k'];
  const samples: Sample[] = [];
  const notes: string[] = [];
  const topologies = await startAll(ctx, { mode: 'http', backendPort: ctx.origin.port });
  try {
    await warmUp(ctx, topologies, '/small');
    for (let run = 1; run <= ctx.runs; run++) {
      for (const path of paths) {
        for (const t of topologies) {
          const metrics = await wrkSample(ctx, t, path, ctx.durationS);
          samples.push({ variant: path, run, topology: t.name, metrics });
          ctx.log(`mesh run ${run}/${ctx.runs} ${path} ${t.name}: ${Math.round(metrics['rps'] ?? 0)} req/s${metrics['cpuPerReqPair'] ? `, ${metrics['cpuPerReqPair'].toFixed(1)} µs CPU/req` : ''}`);
        }
      }
    }
    const weft = topologies.find((t) => t.name === 'weft');
    const accepted = weft?.inboundConnections ? await weft.inboundConnections() : null;
    if (accepted !== null) {
      const requests = samples.filter((s) => s.topology === 'weft').reduce((n, s) => n + (s.metrics['requests'] ?? 0), 0);
      const invocations = ctx.runs * paths.length + (ctx.warmupS > 0 ? 1 : 0);
      notes.push(
        `weft pooling: the api sidecar accepted ${accepted} mTLS connection(s) from the web sidecar during this scenario, for ${requests.toLocaleString('en-US')} measured requests over ${invocations} wrk invocation(s) of ${WRK_CONNECTIONS} connections. ` +
          `Each wrk exit aborts its in-flight requests, which closes those upstream connections, so about ${WRK_CONNECTIONS} new ones per invocation are expected; many more would mean connections are not pooled and reused in steady state.`,
      );
    }
  } finally {
    await stopAll(topologies);
  }
  const groups = groupSamples(samples);
  const tables: TableSpec[] = paths.map((path) => ({
    id: `mesh${path.replace('/', '-')}`,
    title: `Mesh tax, HTTP/1.1 keep-alive, GET ${path} (${path === '/small' ? '100 B' : '1 KiB'} body): saturation and cost`,
    columns: SATURATION_COLUMNS,
    rows: groups[path] ?? {},
  }));
  return {
    name: 'mesh',
    title: '1–2. Mesh tax at saturation (L7)',
    intro:
      `client → A → mTLS (TLS 1.3) → B → origin, HTTP/1.1 keep-alive on every hop. Load: \`wrk -t1 -c${WRK_CONNECTIONS} -d${ctx.durationS}s\` ` +
      `(closed loop: the request rate is whatever the slowest stage allows). CPU µs/req = (utime+stime delta of the process from /proc/PID/stat) ÷ requests wrk completed in the same window; ` +
      `RSS = VmRSS after the run, peak = VmHWM since the process started. ${ctx.runs} interleaved run(s) of ${seconds(ctx.durationS)} per topology and path` +
      `${ctx.warmupS > 0 ? `, after a ${seconds(ctx.warmupS)} warm-up per topology` : ''}. Cells: median (min–max).`,
    tables,
    samples,
    groups,
    notes: [...notes, ...errorNotes(samples)],
  };
}
