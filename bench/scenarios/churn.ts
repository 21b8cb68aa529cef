import { fileURLToPath } from 'node:url';
import type { BenchContext } from '../lib/context.js';
import { ticksToUs } from '../lib/context.js';
import { cpuTicks, spawnManaged } from '../lib/procs.js';
import type { TableSpec } from '../lib/report.js';
import { startAll, stopAll } from '../topologies/index.js';
import type { RunningTopology } from '../topologies/types.js';
import { assertAlive, groupSamples, type Sample, type ScenarioResult } from './common.js';

const CHURN = fileURLToPath(new URL('../lib/tls-churn.js', import.meta.url));
/** Connections (or connection loops) the churn client runs in parallel. */
export const CHURN_CONCURRENCY = 8;
const MODES = ['keepalive', 'new', 'resume'] as const;
type Mode = (typeof MODES)[number];

interface ChurnLine {
  connections: number;
  requests: number;
  errors: number;
  resumed: number;
  durationMs: number;
  protocol: string | null;
  cipher: string | null;
  firstError: string | null;
}

/** Length of one churn measurement in ms. */
function churnMs(ctx: BenchContext): number {
  return ctx.quick ? 500 : Math.max(1000, (ctx.durationS * 1000) / 2);
}

/** One churn run in `mode` against B's inbound (or, for direct, the plaintext origin). */
async function churnRun(ctx: BenchContext, t: RunningTopology, mode: Mode, durationMs = churnMs(ctx)): Promise<{ line: ChurnLine; serverCpuUs: number }> {
  assertAlive(t);
  const server = t.proxies.find((p) => p.role === 'B')?.pid ?? ctx.origin.pid;
  const port = t.inboundPort ?? ctx.origin.port;
  const tls = t.inboundPort !== null ? ['--cert', ctx.certs.web.cert, '--key', ctx.certs.web.key, '--ca', ctx.certs.bundle] : [];
  const args = [CHURN, '--port', String(port), ...tls, '--mode', mode, '--duration-ms', String(durationMs), '--concurrency', String(CHURN_CONCURRENCY), '--path', '/small'];
  const before = cpuTicks(server);
  const proc = spawnManaged('tls-churn', process.execPath, args, { cpus: ctx.pin.client, capture: true, timeoutMs: durationMs + 60_000 });
  const exit = await proc.exited;
  const serverCpuUs = ticksToUs(ctx, cpuTicks(server) - before);
  const text = proc
    .stdout()
    .split('\n')
    .find((l) => l.startsWith('{'));
  if (exit.code !== 0 || !text) throw new Error(`churn client (${mode}) against ${t.name} failed (code ${exit.code}): ${proc.stderr().slice(-1500)}`);
  return { line: JSON.parse(text) as ChurnLine, serverCpuUs };
}

/** Scenario 5: connection churn: server CPU per new mTLS connection, with and without resumption. */
export async function churnScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const samples: Sample[] = [];
  const notes = new Set<string>();
  const topologies = await startAll(ctx, { mode: 'http', backendPort: ctx.origin.port });
  try {
    if (ctx.warmupS > 0) {
      for (const t of topologies) {
        ctx.log(`warm-up ${t.name} churn`);
        for (const mode of MODES) await churnRun(ctx, t, mode, ctx.warmupS * 1000);
      }
    }
    for (let run = 1; run <= ctx.runs; run++) {
      const perTopology = new Map<string, Record<string, number>>();
      for (const mode of MODES) {
        for (const t of topologies) {
          const { line, serverCpuUs } = await churnRun(ctx, t, mode);
          const m = perTopology.get(t.name) ?? {};
          perTopology.set(t.name, m);
          const s = line.durationMs / 1000;
          if (mode === 'keepalive') {
            m['kaRate'] = line.requests / s;
            m['kaCpuUs'] = line.requests > 0 ? serverCpuUs / line.requests : Number.NaN;
          } else {
            const key = mode === 'new' ? 'new' : 'resume';
            m[`${key}Rate`] = line.requests / s;
            m[`${key}CpuUs`] = line.requests > 0 ? serverCpuUs / line.requests : Number.NaN;
            if (mode === 'resume' && t.inboundPort !== null) m['resumedPct'] = line.connections > 0 ? (100 * line.resumed) / line.connections : Number.NaN;
          }
          m['errors'] = (m['errors'] ?? 0) + line.errors;
          if (line.errors > 0) notes.add(`${t.name} ${mode} run ${run}: ${line.errors} errors (first: ${line.firstError})`);
          if (line.protocol && run === 1 && mode === 'new') notes.add(`${t.name}: client → B negotiated ${line.protocol} ${line.cipher}`);
          ctx.log(`churn run ${run}/${ctx.runs} ${mode} ${t.name}: ${Math.round(line.requests / s)}/s, server ${(line.requests > 0 ? serverCpuUs / line.requests : 0).toFixed(0)} µs CPU each`);
        }
      }
      for (const t of topologies) {
        const m = perTopology.get(t.name)!;
        m['hsCpuUs'] = (m['newCpuUs'] ?? Number.NaN) - (m['kaCpuUs'] ?? Number.NaN);
        m['hsResumeCpuUs'] = (m['resumeCpuUs'] ?? Number.NaN) - (m['kaCpuUs'] ?? Number.NaN);
        samples.push({ variant: 'churn', run, topology: t.name, metrics: m });
      }
    }
  } finally {
    await stopAll(topologies);
  }
  const groups = groupSamples(samples);
  const rows = groups['churn'] ?? {};
  const tables: TableSpec[] = [
    {
      id: 'churn',
      title: 'Connection churn at the inbound side (B): a new mTLS connection per request, GET /small',
      columns: [
        { key: 'newRate', label: 'new conn/s', vsDirect: true },
        { key: 'newCpuUs', label: 'B CPU µs/conn', digits: 0 },
        { key: 'resumeRate', label: 'resumed conn/s' },
        { key: 'resumeCpuUs', label: 'B CPU µs/resumed conn', digits: 0 },
        { key: 'resumedPct', label: '% resumed', digits: 0, ratios: false },
        { key: 'kaCpuUs', label: 'B CPU µs/req keep-alive', digits: 1 },
        { key: 'hsCpuUs', label: 'handshake CPU µs (full)', digits: 0 },
        { key: 'hsResumeCpuUs', label: 'handshake CPU µs (resumed)', digits: 0 },
      ],
      rows,
      notes: [
        'handshake CPU = B CPU per new connection − B CPU per request on a kept-alive connection (same client, same run): the cost of accepting, handshaking (verifying the client chain), and closing a connection.',
        'direct: plaintext connections to the origin (no TLS); its CPU columns are the origin nginx, for scale.',
      ],
    },
  ];
  return {
    name: 'churn',
    title: '5. Connection churn (mTLS handshakes)',
    intro:
      `A client (\`bench/lib/tls-churn.ts\`, ${CHURN_CONCURRENCY} in parallel, pinned with the load generator) connects straight to the inbound (mTLS) side B of each pair with the web certificate ` +
      `(TLS 1.3, full chain verification) and sends one \`GET /small\` with \`Connection: close\` per connection: \`new\` makes a full handshake each time, \`resume\` resumes the last TLS 1.3 session ticket, ` +
      `\`keep-alive\` reuses ${CHURN_CONCURRENCY} connections (the baseline subtracted to isolate the handshake). ${ctx.runs} interleaved run(s) of ${(churnMs(ctx) / 1000).toFixed(1)} s per mode. ` +
      `The rate is bounded by the single-threaded Node client on its core as much as by the server: compare the CPU columns, not conn/s.`,
    tables,
    samples,
    groups,
    notes: [...notes],
  };
}
