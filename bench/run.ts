/**
 * weft benchmark suite (issue 3): weft's sidecar pair against nginx and HAProxy pairs and a
 * direct baseline, every scenario interleaved and repeated in one invocation.
 *
 *   npm run bench -- [--quick] [--runs 3] [--duration 10s] [--only mesh,latency,l4,bulk,churn,startup] [--out DIR]
 *
 * Writes report.md, results.json and chart.svg to DIR (default bench/results/<timestamp>/).
 * See docs/performance.md.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/duration.js';
import { makeCerts } from './lib/certs.js';
import type { BenchContext } from './lib/context.js';
import { checkTools, collectEnv, pinningPlan } from './lib/env.js';
import { chartMetrics, evaluateGoals } from './lib/goals.js';
import { freePort } from './lib/ports.js';
import { installCleanup, runningProcesses } from './lib/procs.js';
import { renderGoals, renderReport } from './lib/report.js';
import { barChart } from './lib/svg.js';
import { bulkScenario } from './scenarios/bulk.js';
import { churnScenario } from './scenarios/churn.js';
import type { Scenario, ScenarioResult } from './scenarios/common.js';
import { latencyScenario, LATENCY_CONNECTIONS, LATENCY_RATE } from './scenarios/latency.js';
import { l4Scenario } from './scenarios/l4.js';
import { meshScenario, WRK_CONNECTIONS } from './scenarios/mesh.js';
import { startupScenario } from './scenarios/startup.js';
import { startOrigin, TLS13_SUITES } from './topologies/nginx.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const SCENARIOS: ReadonlyArray<readonly [string, Scenario]> = [
  ['mesh', meshScenario],
  ['latency', latencyScenario],
  ['l4', l4Scenario],
  ['bulk', bulkScenario],
  ['churn', churnScenario],
  ['startup', startupScenario],
];

const USAGE = `Usage: node dist/bench/run.js [--quick] [--runs N] [--duration 10s] [--only LIST] [--out DIR] [--bulk-mib N]

  --quick         every scenario and topology at tiny sizes (1 run, 1 s, 64 MiB bulk): proves the harness works
  --runs N        measured runs per topology, interleaved (default 3; quick 1)
  --duration D    length of one measured run, whole seconds (default 10s; quick 1s)
  --only LIST     comma-separated subset of: ${SCENARIOS.map(([n]) => n).join(', ')}
  --out DIR       write report.md, results.json, chart.svg and logs/ here (default bench/results/<timestamp>/)
  --bulk-mib N    size of one bulk stream in MiB (default 2048; quick 64)
`;

interface Options {
  quick: boolean;
  runs: number;
  durationS: number;
  warmupS: number;
  only: string[];
  out: string;
  bulkBytes: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      duration: { type: 'string' },
      only: { type: 'string' },
      out: { type: 'string' },
      'bulk-mib': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const quick = values.quick;
  const runs = values.runs !== undefined ? Number(values.runs) : quick ? 1 : 3;
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error(`--runs must be a whole number from 1 to 20 (got ${values.runs})`);
  let durationS = quick ? 1 : 10;
  if (values.duration !== undefined) {
    const ms = /^\d+$/.test(values.duration) ? Number(values.duration) * 1000 : parseDuration(values.duration);
    durationS = Math.round(ms / 1000);
    if (durationS < 1 || durationS > 600) throw new Error(`--duration must be whole seconds from 1s to 600s, wrk's resolution (got ${values.duration})`);
  }
  const names = SCENARIOS.map(([n]) => n);
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter((s) => s !== '') : names;
  for (const o of only) if (!names.includes(o)) throw new Error(`--only: unknown scenario "${o}"; choose from ${names.join(', ')}`);
  const bulkMib = values['bulk-mib'] !== undefined ? Number(values['bulk-mib']) : quick ? 64 : 2048;
  if (!Number.isFinite(bulkMib) || bulkMib < 1 || bulkMib > 16384) throw new Error('--bulk-mib must be from 1 to 16384');
  const stamp = new Date().toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const out = values.out ? resolve(values.out) : join(REPO, 'bench', 'results', stamp);
  return { quick, runs, durationS, warmupS: quick ? 0 : 2, only, out, bulkBytes: Math.round(bulkMib * 2 ** 20) };
}

/** Removes the scratch folder and the build snapshot (set once they exist). */
let removeScratch = (): void => {};

async function main(): Promise<number> {
  const started = performance.now();
  const options = parseOptions(process.argv.slice(2));
  const { missing } = checkTools();
  if (missing.length > 0) {
    process.stderr.write(`weft bench: missing ${missing.join(', ')}: run scripts/install-bench-deps.sh (see docs/performance.md)\n`);
    return 2;
  }
  const builtMain = join(REPO, 'dist', 'src', 'cli', 'main.js');
  if (!existsSync(builtMain)) {
    process.stderr.write(`weft bench: ${builtMain} is missing: run npm run build first\n`);
    return 2;
  }

  // Scratch space and a snapshot of the weft build, so a rebuild during the run changes nothing.
  const work = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  const snapshot = join(REPO, 'bench', 'results', '.snapshots', `${process.pid}-${Date.now()}`);
  removeScratch = () => {
    rmSync(work, { recursive: true, force: true });
    rmSync(snapshot, { recursive: true, force: true });
    try {
      rmdirSync(dirname(snapshot));
    } catch {
      // another run's snapshot is still there
    }
  };
  installCleanup(() => removeScratch());
  mkdirSync(join(snapshot, 'dist'), { recursive: true });
  cpSync(join(REPO, 'dist', 'src'), join(snapshot, 'dist', 'src'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(snapshot, 'package.json'));
  const weftMain = join(snapshot, 'dist', 'src', 'cli', 'main.js');

  mkdirSync(join(options.out, 'logs'), { recursive: true });
  mkdirSync(join(options.out, 'conf'), { recursive: true });
  const env = collectEnv(REPO);
  const pin = pinningPlan(env.cores, env.taskset);
  const log = (m: string) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
  log(`results in ${options.out}; ${options.quick ? 'quick mode; ' : ''}${options.runs} run(s) × ${options.durationS} s; scenarios: ${options.only.join(', ')}`);
  log(`pinning: ${pin.description}`);

  const counters = new Map<string, number>();
  const uniqueName = (kind: string) => {
    const n = (counters.get(kind) ?? 0) + 1;
    counters.set(kind, n);
    return `${kind}-${n}`;
  };
  const certs = await makeCerts(work, weftMain);
  const originPort = await freePort();
  const origin = await startOrigin({ work, outDir: options.out, uniqueName, pin }, originPort);

  const ctx: BenchContext = {
    repoDir: REPO,
    weftMain,
    work,
    outDir: options.out,
    certs,
    pin,
    env,
    quick: options.quick,
    runs: options.runs,
    durationS: options.durationS,
    warmupS: options.warmupS,
    bulkBytes: options.bulkBytes,
    origin: { port: originPort, pid: origin.proc.pid },
    uniqueName,
    log,
  };

  const results: ScenarioResult[] = [];
  const failures: { scenario: string; error: string }[] = [];
  try {
    for (const [name, scenario] of SCENARIOS) {
      if (!options.only.includes(name)) continue;
      log(`scenario ${name}`);
      try {
        results.push(await scenario(ctx));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`scenario ${name} FAILED: ${message}`);
        failures.push({ scenario: name, error: message });
      }
      const leftover = runningProcesses().filter((p) => p.pid !== origin.proc.pid);
      if (leftover.length > 0) {
        log(`stopping ${leftover.length} process(es) left by ${name}: ${leftover.map((p) => `${p.name} (${p.pid})`).join(', ')}`);
        await Promise.all(leftover.map((p) => p.stop()));
      }
    }
  } finally {
    await origin.proc.stop();
  }

  const goals = evaluateGoals(results);
  const elapsedS = (performance.now() - started) / 1000;
  const command = `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim();
  const report = renderReport({
    title: `weft benchmark${options.quick ? ' (quick mode: harness check, figures not meaningful)' : ''}`,
    command,
    env,
    pinning: pin.description,
    settings: [
      `${options.runs} measured run(s) per topology, interleaved (run 1: direct, weft, nginx, haproxy; run 2: …); cells are median (min–max) over the runs`,
      `${options.durationS} s per measured run${options.warmupS > 0 ? `; ${options.warmupS} s warm-up per topology before run 1` : '; no warm-up'}`,
      `saturation load: wrk -t1 -c${WRK_CONNECTIONS} (keep-alive); fixed-rate load: open-loop generator at ${LATENCY_RATE} req/s over ${LATENCY_CONNECTIONS} connections`,
      `bulk stream: ${Math.round(options.bulkBytes / 2 ** 20)} MiB`,
      `MB = 10^6 bytes; CPU from /proc/PID/stat (utime + stime, all threads of the process)`,
    ],
    topologies: [
      'origin (shared by every topology): one nginx process answering `return 200` with a 100 B body on /small and 1 KiB on /1k; plaintext HTTP/1.1 keep-alive.',
      'direct: client → origin.',
      'weft: client → `weft sidecar --service web --upstream api=…` (A) → mTLS → `weft sidecar --service api --inbound … --app origin` (B) → origin; both self-issue from the CA folder (`--issuer`, `--ttl 24h`), `WEFT_LOG_LEVEL=warn`, access log off (`WEFT_BENCH_ACCESS_LOG=stdout` turns it on), no tracing; L4: `--protocol tcp` / `=tcp`.',
      'nginx: nginx A (`proxy_pass https://…`, `proxy_ssl_certificate` web, `proxy_ssl_verify on`, upstream keepalive 64) → nginx B (`ssl_verify_client on`, keep-alive to the origin); L4: `stream {}` with `proxy_ssl on` / `listen … ssl`. `master_process off` (one process each), access log off. nginx verifies the chain and the subject CN (`proxy_ssl_name api`), not the SPIFFE URI SAN.',
      'haproxy: HAProxy A (`server … ssl crt web.pem ca-file bundle.pem verify required alpn http/1.1`, `http-reuse always`) → HAProxy B (`bind … ssl crt api.pem ca-file bundle.pem verify required`); L4: `mode tcp`. `nbthread 1`, `-db` (one process each). HAProxy verifies the chain only.',
      `Every pair: certificates from one \`weft ca init\` CA (ECDSA P-256; nginx and HAProxy use \`weft ca issue\` web/api certificates, weft self-issues the same profile), TLS 1.3 only between the proxies, suites in weft's order (${TLS13_SUITES}) so all negotiate TLS_AES_128_GCM_SHA256; B adds X-Forwarded-For (as weft does). Configs: conf/ next to this report.`,
    ],
    goals,
    scenarios: results,
    failures,
    elapsedS,
  });
  writeFileSync(join(options.out, 'report.md'), report);
  writeFileSync(
    join(options.out, 'results.json'),
    `${JSON.stringify({ command, options, env, pinning: pin, goals, failures, scenarios: results, elapsedS }, null, 2)}\n`,
  );
  writeFileSync(join(options.out, 'chart.svg'), barChart(chartMetrics(results), `${env.cpuModel}, ${env.cores} cores · ${env.date.slice(0, 10)} · ${options.runs} run(s) × ${options.durationS} s · medians`));
  removeScratch();
  process.stdout.write(`\n${renderGoals(goals)}\nreport: ${join(options.out, 'report.md')}\n`);
  log(`done in ${elapsedS.toFixed(0)} s${failures.length > 0 ? `; ${failures.length} scenario(s) failed: ${failures.map((f) => f.scenario).join(', ')}` : ''}`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    removeScratch();
    process.stderr.write(`weft bench: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
