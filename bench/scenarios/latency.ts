import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.js';
import { ticksToUs } from '../lib/context.js';
import { cpuTicks, memory, sleep, spawnManaged } from '../lib/procs.js';
import type { TableSpec } from '../lib/report.js';
import { startAll, stopAll } from '../topologies/index.js';
import type { RunningTopology } from '../topologies/types.js';
import { assertAlive, groupSamples, seconds, type Sample, type ScenarioResult } from './common.js';
import { errorNotes, warmUp } from './mesh.js';

/** The fixed request rate of the latency scenario (req/s). */
export const LATENCY_RATE = 1000;
/** Keep-alive connections the open-loop generator keeps open. */
export const LATENCY_CONNECTIONS = 64;
const PERCENTILES = ['p50', 'p90', 'p99', 'p999'] as const;

/** The compiled open-loop generator (written by bench/lib/open-loop.ts). */
export const OPEN_LOOP = fileURLToPath(new URL('../lib/open-loop.js', import.meta.url));

interface OpenLoopLine {
  intended: number;
  completed: number;
  errors: number;
  late?: number;
  achievedRate: number;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
}

/**
 * One open-loop run at LATENCY_RATE against `t.url/small`, with the proxies' CPU sampled over
 * the steady part of the measured window (from 0.3 s after it starts to 0.2 s before it ends).
 */
async function openLoopSample(ctx: BenchContext, t: RunningTopology): Promise<Record<string, number>> {
  assertAlive(t);
  const args = [OPEN_LOOP, '--url', `${t.url}/small`, '--rate', String(LATENCY_RATE), '--duration', `${ctx.durationS}s`, '--connections', String(LATENCY_CONNECTIONS)];
  if (ctx.warmupS > 0) args.push('--warmup', `${ctx.warmupS}s`);
  const spawnedAt = performance.now();
  const proc = spawnManaged('open-loop', process.execPath, args, { cpus: ctx.pin.client, capture: true, timeoutMs: (ctx.durationS + ctx.warmupS + 60) * 1000 });
  // CPU window inside the measured part of the run (the generator starts in well under 0.3 s).
  const windowStart = ctx.warmupS * 1000 + 300;
  const windowEnd = Math.max(windowStart + 200, (ctx.warmupS + ctx.durationS) * 1000 - 200);
  const usage = (async () => {
    await sleep(Math.max(0, spawnedAt + windowStart - performance.now()));
    const t0 = performance.now();
    const before = t.proxies.map((p) => cpuTicks(p.pid));
    await sleep(Math.max(0, spawnedAt + windowEnd - performance.now()));
    const wallUs = (performance.now() - t0) * 1000;
    const out: Record<string, number> = {};
    t.proxies.forEach((p, i) => {
      out[`vcpu${p.role}`] = ticksToUs(ctx, cpuTicks(p.pid) - before[i]!) / wallUs;
      const mem = memory(p.pid);
      out[`rssMb${p.role}`] = mem.rss / 1e6;
      out[`hwmMb${p.role}`] = mem.hwm / 1e6;
    });
    return out;
  })();
  const exit = await proc.exited;
  const proxyUsage = await usage.catch(() => ({}) as Record<string, number>);
  const line = proc
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .pop();
  if (exit.code !== 0 || !line) throw new Error(`open-loop generator failed against ${t.name} (code ${exit.code}): ${proc.stderr().slice(-1500)}`);
  const r = JSON.parse(line) as OpenLoopLine;
  const metrics: Record<string, number> = {
    intended: r.intended,
    completed: r.completed,
    errors: r.errors,
    late: r.late ?? Number.NaN,
    achievedRate: r.achievedRate,
    maxUs: r.latencyUs.max,
    meanUs: r.latencyUs.mean,
    ...proxyUsage,
  };
  for (const p of PERCENTILES) metrics[`${p}Us`] = r.latencyUs[p];
  return metrics;
}

/** Scenario 3: latency at a fixed rate, open loop (coordinated omission corrected), added over direct. */
export async function latencyScenario(ctx: BenchContext): Promise<ScenarioResult> {
  if (!existsSync(OPEN_LOOP)) throw new Error(`the open-loop generator ${OPEN_LOOP} is missing: build bench/lib/open-loop.ts (npm run build)`);
  const samples: Sample[] = [];
  const topologies = await startAll(ctx, { mode: 'http', backendPort: ctx.origin.port });
  try {
    // JIT and pools warm, as in scenario 1 (the generator's own warm-up then settles the rate).
    await warmUp(ctx, topologies, '/small');
    for (let run = 1; run <= ctx.runs; run++) {
      for (const t of topologies) {
        const metrics = await openLoopSample(ctx, t);
        samples.push({ variant: 'rate', run, topology: t.name, metrics });
        ctx.log(`latency run ${run}/${ctx.runs} ${t.name}: p50 ${metrics['p50Us']} µs, p99 ${metrics['p99Us']} µs, ${Math.round(metrics['achievedRate'] ?? 0)} req/s`);
      }
    }
  } finally {
    await stopAll(topologies);
  }
  // Added latency: each topology's percentile minus direct's in the same run.
  for (const s of samples) {
    const direct = samples.find((d) => d.run === s.run && d.topology === 'direct');
    for (const p of PERCENTILES) {
      const base = direct?.metrics[`${p}Us`];
      s.metrics[`added${p}Us`] = base === undefined ? Number.NaN : (s.metrics[`${p}Us`] ?? Number.NaN) - base;
    }
  }
  const groups = groupSamples(samples);
  const rows = groups['rate'] ?? {};
  const tables: TableSpec[] = [
    {
      id: 'latency',
      title: `Latency at ${LATENCY_RATE.toLocaleString('en-US')} req/s, open loop, GET /small (µs; added = topology − direct in the same run)`,
      columns: [
        { key: 'p50Us', label: 'p50', vsDirect: true },
        { key: 'p90Us', label: 'p90' },
        { key: 'p99Us', label: 'p99', vsDirect: true },
        { key: 'p999Us', label: 'p99.9' },
        { key: 'addedp50Us', label: 'added p50' },
        { key: 'addedp90Us', label: 'added p90' },
        { key: 'addedp99Us', label: 'added p99' },
        { key: 'addedp999Us', label: 'added p99.9' },
      ],
      rows,
    },
    {
      id: 'latency-resources',
      title: `Proxy cost at ${LATENCY_RATE.toLocaleString('en-US')} req/s (same runs)`,
      columns: [
        { key: 'achievedRate', label: 'achieved req/s', ratios: false },
        { key: 'errors', label: 'errors', ratios: false },
        { key: 'vcpuA', label: 'vCPU A', digits: 3 },
        { key: 'vcpuB', label: 'vCPU B', digits: 3 },
        { key: 'rssMbA', label: 'RSS MB A', digits: 1 },
        { key: 'rssMbB', label: 'RSS MB B', digits: 1 },
      ],
      rows,
    },
  ];
  return {
    name: 'latency',
    title: '3. Latency at a fixed rate (open loop)',
    intro:
      `The same L7 pairs as scenario 1, loaded at a fixed ${LATENCY_RATE} req/s by \`bench/lib/open-loop.ts\` (its own process, ${LATENCY_CONNECTIONS} keep-alive connections): ` +
      `request i is due at t0 + i/rate whatever happened before, and its latency counts from that intended send time, so a stall is charged to every request it delayed ` +
      `(coordinated omission corrected; wrk's figures in scenario 1 are not). ${ctx.runs} interleaved run(s) of ${seconds(ctx.durationS)}` +
      `${ctx.warmupS > 0 ? `, each after a ${seconds(ctx.warmupS)} warm-up at the same rate (and one ${seconds(ctx.warmupS)} wrk warm-up per topology before run 1)` : ''}. vCPU = CPU seconds ÷ wall seconds of each proxy process over the measured window; RSS = VmRSS at its end.`,
    tables,
    samples,
    groups,
    notes: errorNotes(samples),
  };
}
