import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release, totalmem, hostname } from 'node:os';

/** Machine and software versions recorded with every result. */
export interface MachineInfo {
  readonly date: string;
  readonly hostname: string;
  readonly kernel: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly nodeOpenssl: string;
  readonly openssl: string;
  readonly nginx: string;
  readonly haproxy: string;
  readonly wrk: string;
  readonly taskset: boolean;
  readonly clkTck: number;
  readonly weftCommit: string;
}

/** The external programs the suite needs; `missing` lists those not found on PATH. */
export function checkTools(): { missing: string[] } {
  const missing: string[] = [];
  for (const tool of ['nginx', 'haproxy', 'wrk', 'openssl']) {
    if (!onPath(tool)) missing.push(tool);
  }
  return { missing };
}

/** True when `tool` is an executable on PATH (or one of the sbin folders). */
export function onPath(tool: string): boolean {
  try {
    execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { stdio: 'ignore', env: { ...process.env, PATH: searchPath() } });
    return true;
  } catch {
    return false;
  }
}

/** PATH plus the sbin folders where nginx and HAProxy live on Debian. */
export function searchPath(): string {
  const extra = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
  const parts = (process.env['PATH'] ?? '').split(':').filter((p) => p !== '');
  for (const e of extra) if (!parts.includes(e)) parts.push(e);
  return parts.join(':');
}

function run(cmd: string, args: string[]): string {
  try {
    // Some tools (nginx -v) print their version on stderr.
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: searchPath() } });
    return out.trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

function runBoth(cmd: string, args: string[]): string {
  try {
    const r = execFileSync('/bin/sh', ['-c', `${cmd} ${args.join(' ')} 2>&1`], { encoding: 'utf8', env: { ...process.env, PATH: searchPath() } });
    return r.trim();
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? 'not found').trim();
  }
}

/** Collects versions and the machine description. `repoDir` is the weft checkout (for the commit). */
export function collectEnv(repoDir: string): MachineInfo {
  const cpuList = cpus();
  let cpuModel = cpuList[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // keep os.cpus()
  }
  const first = (s: string) => s.split('\n')[0] ?? s;
  let commit = run('git', ['-C', repoDir, 'rev-parse', '--short', 'HEAD']);
  if (!/^[0-9a-f]+$/.test(commit)) commit = 'unknown';
  else {
    const dirty = run('git', ['-C', repoDir, 'status', '--porcelain', '--', 'src']);
    if (dirty !== '') commit += ' + uncommitted changes in src/';
  }
  return {
    date: new Date().toISOString(),
    hostname: hostname(),
    kernel: `${release()}`,
    cpuModel,
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    nodeOpenssl: process.versions.openssl ?? 'unknown',
    openssl: first(run('openssl', ['version'])),
    nginx: first(runBoth('nginx', ['-v'])).replace(/^nginx version:\s*/, ''),
    haproxy: first(runBoth('haproxy', ['-v'])).replace(/^HAProxy version\s*/, '').replace(/\s+-\s+https?:\/\/\S+$/, ''),
    wrk: first(runBoth('wrk', ['-v'])).replace(/\s+Copyright.*$/, ''),
    taskset: onPath('taskset'),
    clkTck: Number(run('getconf', ['CLK_TCK'])) || 100,
    weftCommit: commit,
  };
}

/** Which cores each role runs on (`taskset -c` lists), and the sentence the report prints. */
export interface Pinning {
  /** Load generators and clients (wrk, open-loop, churn and bulk clients). */
  readonly client: string | null;
  /** The origin nginx and the bulk sink. */
  readonly origin: string | null;
  /** Proxy A (client side: web sidecar, nginx A, HAProxy A). */
  readonly proxyA: string | null;
  /** Proxy B (server side: api sidecar, nginx B, HAProxy B). */
  readonly proxyB: string | null;
  readonly description: string;
}

/**
 * The pinning plan for `cores` cores: with 4 or more, client, origin, A and B each get their
 * own core; with 3, client and origin share core 0; with 2, the two ends (client and origin)
 * share core 0 and the two proxies share core 1; with 1 (or no taskset) nothing is pinned.
 */
export function pinningPlan(cores: number, taskset: boolean): Pinning {
  if (!taskset || cores < 2) {
    return { client: null, origin: null, proxyA: null, proxyB: null, description: `not pinned (${taskset ? 'one core' : 'taskset not found'}): every process shares every core` };
  }
  if (cores >= 4) {
    return { client: '0', origin: '1', proxyA: '2', proxyB: '3', description: `one core each: load generator on core 0, origin on core 1, proxy A on core 2, proxy B on core 3 (${cores} cores)` };
  }
  if (cores === 3) {
    return { client: '0', origin: '0', proxyA: '1', proxyB: '2', description: 'load generator and origin share core 0; proxy A on core 1; proxy B on core 2 (3 cores)' };
  }
  return {
    client: '0',
    origin: '0',
    proxyA: '1',
    proxyB: '1',
    description:
      '2 cores: the two ends (load generator and origin, or bulk source and sink) share core 0; the two proxies of a pair (A and B) share core 1, so at saturation core 1 is the bottleneck and req/s measures what one core of proxying delivers for a pair',
  };
}
