import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.js';
import { spawnManaged, type ManagedProcess } from '../lib/procs.js';
import type { TableSpec } from '../lib/report.js';
import { startAll, stopAll } from '../topologies/index.js';
import type { RunningTopology } from '../topologies/types.js';
import { addProxyUsage, assertAlive, groupSamples, readTicks, type Sample, type ScenarioResult } from './common.js';

const BULK = fileURLToPath(new URL('../lib/bulk.js', import.meta.url));
const GIB = 2 ** 30;

/** Starts the bulk sink (pinned like the origin) and resolves with its process and port. */
async function startSink(ctx: BenchContext): Promise<{ proc: ManagedProcess; port: number }> {
  const proc = spawnManaged('bulk-sink', process.execPath, [BULK, 'sink', '--port', '0'], { cpus: ctx.pin.origin, capture: true });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const m = /\{"listening":(\d+)\}/.exec(proc.stdout());
    if (m) return { proc, port: Number(m[1]) };
    if (!proc.running()) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await proc.stop();
  throw new Error(`bulk sink did not start: ${proc.stderr()}`);
}

/** One stream of `bytes` through `t`; returns Gbit/s and CPU seconds per GiB per proxy. */
async function bulkSample(ctx: BenchContext, t: RunningTopology, bytes: number): Promise<Record<string, number>> {
  assertAlive(t);
  const before = readTicks(t.proxies);
  const proc = spawnManaged('bulk-source', process.execPath, [BULK, 'source', '--port', String(t.port), '--bytes', String(bytes), '--timeout-ms', '180000'], {
    cpus: ctx.pin.client,
    capture: true,
    timeoutMs: 200_000,
  });
  const exit = await proc.exited;
  const line = proc
    .stdout()
    .split('\n')
    .find((l) => l.startsWith('{'));
  if (exit.code !== 0 || !line) throw new Error(`bulk source through ${t.name} failed (code ${exit.code}): ${proc.stderr().slice(-1500)}`);
  const r = JSON.parse(line) as { bytes: number; ms: number; gbps: number };
  const metrics: Record<string, number> = { gbps: r.gbps, ms: r.ms, bytes: r.bytes };
  const used = addProxyUsage(ctx, t.proxies, before, metrics);
  if (t.proxies.length > 0) {
    const gib = r.bytes / GIB;
    const a = (used.get('A') ?? 0) / 1e6;
    const b = (used.get('B') ?? 0) / 1e6;
    metrics['cpuSPerGibA'] = a / gib;
    metrics['cpuSPerGibB'] = b / gib;
    metrics['cpuSPerGibPair'] = (a + b) / gib;
  }
  return metrics;
}

/** Scenario 4b: one long stream through each L4 pair: Gbit/s and CPU per GiB. */
export async function bulkScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const samples: Sample[] = [];
  const sink = await startSink(ctx);
  let topologies: RunningTopology[] = [];
  try {
    topologies = await startAll(ctx, { mode: 'tcp', backendPort: sink.port });
    if (ctx.warmupS > 0) {
      for (const t of topologies) await bulkSample(ctx, t, Math.min(ctx.bulkBytes, 256 * 2 ** 20));
    }
    for (let run = 1; run <= ctx.runs; run++) {
      for (const t of topologies) {
        const metrics = await bulkSample(ctx, t, ctx.bulkBytes);
        samples.push({ variant: 'stream', run, topology: t.name, metrics });
        ctx.log(`bulk run ${run}/${ctx.runs} ${t.name}: ${(metrics['gbps'] ?? 0).toFixed(2)} Gbit/s`);
      }
    }
  } finally {
    await stopAll(topologies);
    await sink.proc.stop();
  }
  const groups = groupSamples(samples);
  const size = ctx.bulkBytes >= GIB ? `${(ctx.bulkBytes / GIB).toFixed(ctx.bulkBytes % GIB === 0 ? 0 : 1)} GiB` : `${Math.round(ctx.bulkBytes / 2 ** 20)} MiB`;
  const tables: TableSpec[] = [
    {
      id: 'bulk',
      title: `Bulk: one ${size} stream through each L4 pair`,
      columns: [
        { key: 'gbps', label: 'Gbit/s', digits: 2, vsDirect: true },
        { key: 'cpuSPerGibA', label: 'CPU s/GiB A', digits: 2 },
        { key: 'cpuSPerGibB', label: 'CPU s/GiB B', digits: 2 },
        { key: 'cpuSPerGibPair', label: 'CPU s/GiB pair', digits: 2 },
        { key: 'hwmMbA', label: 'peak RSS MB A', digits: 1 },
        { key: 'hwmMbB', label: 'peak RSS MB B', digits: 1 },
      ],
      rows: groups['stream'] ?? {},
    },
  ];
  return {
    name: 'bulk',
    title: '4b. Bulk stream through the L4 pairs',
    intro:
      `A source (\`bench/lib/bulk.ts source\`, pinned with the load generator) writes one ${size} stream through each L4 pair (the same configurations as 4a, with a sink in place of the origin) ` +
      `and stops the clock when the sink acknowledges the last byte. ${ctx.runs} interleaved run(s); Gbit/s = bits ÷ time from connect to acknowledgement; CPU s/GiB = process CPU seconds during the transfer ÷ GiB carried.`,
    tables,
    samples,
    groups,
    notes: [],
  };
}
