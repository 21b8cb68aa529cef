import type { BenchContext } from '../lib/context.js';
import { freePort } from '../lib/ports.js';
import { memory, sleep, type ManagedProcess } from '../lib/procs.js';
import type { TableSpec } from '../lib/report.js';
import { startHaproxyB } from '../topologies/haproxy.js';
import { startNginxB, startOrigin } from '../topologies/nginx.js';
import { TOPOLOGY_NAMES, type TopologyName } from '../topologies/types.js';
import { apiArgs, spawnSidecar, waitReady } from '../topologies/weft.js';
import { groupSamples, type Sample, type ScenarioResult } from './common.js';

/** Starts the inbound side of `name` and resolves with its process once it is ready. */
async function startOne(ctx: BenchContext, name: TopologyName): Promise<ManagedProcess> {
  switch (name) {
    case 'direct':
      return (await startOrigin(ctx, await freePort())).proc;
    case 'nginx':
      return (await startNginxB(ctx, { mode: 'http', backendPort: ctx.origin.port })).instance.proc;
    case 'haproxy':
      return (await startHaproxyB(ctx, { mode: 'http', backendPort: ctx.origin.port })).proc;
    case 'weft': {
      const [p2, admin] = [await freePort(), await freePort()];
      const s = spawnSidecar(ctx, 'weft-api-startup', apiArgs('http', p2, ctx.origin.port), admin, ctx.pin.proxyB);
      try {
        await waitReady(s, 5);
      } catch (err) {
        await s.proc.stop();
        throw err;
      }
      return s.proc;
    }
  }
}

/** Scenario 6: start-up time to ready and idle RSS of the inbound side. */
export async function startupScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const tries = ctx.quick ? 1 : 5;
  const idleMs = ctx.quick ? 300 : 1000;
  const samples: Sample[] = [];
  for (let run = 1; run <= tries; run++) {
    for (const name of TOPOLOGY_NAMES) {
      const t0 = performance.now();
      const proc = await startOne(ctx, name);
      const readyMs = performance.now() - t0;
      try {
        await sleep(idleMs);
        const mem = memory(proc.pid);
        samples.push({ variant: 'start', run, topology: name, metrics: { readyMs, idleRssMb: mem.rss / 1e6 } });
        ctx.log(`startup ${run}/${tries} ${name}: ready in ${readyMs.toFixed(0)} ms, idle RSS ${(mem.rss / 1e6).toFixed(1)} MB`);
      } finally {
        await proc.stop();
      }
    }
  }
  const groups = groupSamples(samples);
  const tables: TableSpec[] = [
    {
      id: 'startup',
      title: `Start-up: spawn → ready, and idle RSS ${idleMs === 1000 ? '1 s' : `${idleMs} ms`} after ready (${tries} tries)`,
      columns: [
        { key: 'readyMs', label: 'start → ready ms', digits: 0 },
        { key: 'idleRssMb', label: 'idle RSS MB', digits: 1 },
      ],
      rows: groups['start'] ?? {},
      notes: [
        'weft: `weft sidecar` for api (inbound http, self-issuing its certificate: key generation and signing included), ready = `/ready` answers 200, polled every 5 ms.',
        'nginx / haproxy: the B configuration of the pair (mTLS inbound, loading the api certificate), ready = its port accepts a TCP connection, polled every 5 ms.',
        'direct: a plaintext origin nginx (no proxy exists in this topology; shown for scale).',
        'min is the fairest start-up figure on a shared machine; the median includes scheduling noise.',
      ],
    },
  ];
  return {
    name: 'startup',
    title: '6. Start-up and idle memory',
    intro: `Each process is started ${tries} time(s), interleaved, pinned to proxy B's core; the clock starts just before spawn.`,
    tables,
    samples,
    groups,
    notes: [],
  };
}
