import type { BenchContext } from '../lib/context.js';
import type { TableSpec } from '../lib/report.js';
import { startAll, stopAll } from '../topologies/index.js';
import { groupSamples, seconds, type Sample, type ScenarioResult } from './common.js';
import { errorNotes, SATURATION_COLUMNS, warmUp, WRK_CONNECTIONS, wrkSample } from './mesh.js';

/** Scenario 4a: L4 pairs (TLS + byte piping) carrying the same HTTP keep-alive load. */
export async function l4Scenario(ctx: BenchContext): Promise<ScenarioResult> {
  const path = '/small';
  const samples: Sample[] = [];
  const topologies = await startAll(ctx, { mode: 'tcp', backendPort: ctx.origin.port });
  try {
    await warmUp(ctx, topologies, path);
    for (let run = 1; run <= ctx.runs; run++) {
      for (const t of topologies) {
        const metrics = await wrkSample(ctx, t, path, ctx.durationS);
        samples.push({ variant: path, run, topology: t.name, metrics });
        ctx.log(`l4 run ${run}/${ctx.runs} ${t.name}: ${Math.round(metrics['rps'] ?? 0)} req/s${metrics['cpuPerReqPair'] ? `, ${metrics['cpuPerReqPair'].toFixed(1)} µs CPU/req` : ''}`);
      }
    }
  } finally {
    await stopAll(topologies);
  }
  const groups = groupSamples(samples);
  const [rps, ...rest] = SATURATION_COLUMNS;
  const tables: TableSpec[] = [
    {
      id: 'l4',
      title: `L4 pairs, HTTP/1.1 keep-alive GET ${path} carried as opaque TLS streams`,
      columns: [rps!, { key: 'reqPerCpuS', label: 'req per proxy CPU-second' }, ...rest],
      rows: groups[path] ?? {},
      notes: [
        '"req per proxy CPU-second" = requests ÷ (CPU seconds of A + B): throughput per core of proxying, independent of how the pair shares cores.',
      ],
    },
  ];
  return {
    name: 'l4',
    title: '4a. L4: TLS byte piping under HTTP keep-alive load',
    intro:
      `weft with \`--protocol tcp\` on api and \`=tcp\` on web's upstream, nginx \`stream {}\` with \`proxy_ssl on\` (A) and \`listen … ssl; ssl_verify_client on\` (B), HAProxy \`mode tcp\` with the same ssl options. ` +
      `Every wrk connection becomes one mTLS connection A → B and one connection to the origin. Load and measurement as in scenario 1: \`wrk -t1 -c${WRK_CONNECTIONS} -d${ctx.durationS}s\`, ${ctx.runs} interleaved run(s) of ${seconds(ctx.durationS)}.`,
    tables,
    samples,
    groups,
    notes: errorNotes(samples),
  };
}
