import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnManaged } from './procs.js';

/** What one wrk run measured. */
export interface WrkResult {
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses. */
  readonly errors: number;
  readonly bytes: number;
  /** Closed-loop latency in µs (wrk's own; not coordinated-omission corrected). */
  readonly latencyUs: { readonly p50: number; readonly p99: number; readonly mean: number; readonly max: number };
}

const SCRIPT = `-- written by weft bench: print the summary as one JSON line
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d,"mean":%.1f,"max":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
`;

/** Writes the wrk Lua reporter into `dir` (once) and returns its path. */
export function wrkScript(dir: string): string {
  const file = join(dir, 'wrk-json.lua');
  if (!existsSync(file)) writeFileSync(file, SCRIPT);
  return file;
}

/**
 * Runs `wrk -t1 -cN -dS` (closed loop, keep-alive) against `url`, pinned to `cpus`, and parses
 * its summary. Rejects when wrk fails or prints no summary. Bounded: killed after duration + 30 s.
 */
export async function runWrk(options: {
  url: string;
  connections: number;
  durationS: number;
  cpus: string | null;
  scriptDir: string;
  threads?: number;
}): Promise<WrkResult> {
  const durationS = Math.max(1, Math.round(options.durationS));
  const args = ['-t', String(options.threads ?? 1), '-c', String(options.connections), '-d', `${durationS}s`, '--timeout', '5s', '-s', wrkScript(options.scriptDir), options.url];
  const proc = spawnManaged('wrk', 'wrk', args, { cpus: options.cpus, capture: true, timeoutMs: (durationS + 30) * 1000 });
  const exit = await proc.exited;
  const line = proc
    .stdout()
    .split('\n')
    .find((l) => l.startsWith('WRKJSON '));
  if (exit.code !== 0 || !line) {
    throw new Error(`wrk ${args.join(' ')} failed (code ${exit.code}, signal ${exit.signal}): ${proc.stdout().slice(-1500)} ${proc.stderr().slice(-1500)}`);
  }
  const j = JSON.parse(line.slice('WRKJSON '.length)) as Record<string, number>;
  const dur = (j['duration_us'] ?? 0) / 1e6;
  const requests = j['requests'] ?? 0;
  return {
    requests,
    durationS: dur,
    rps: dur > 0 ? requests / dur : 0,
    errors: (j['connect'] ?? 0) + (j['read'] ?? 0) + (j['write'] ?? 0) + (j['status'] ?? 0) + (j['timeout'] ?? 0),
    bytes: j['bytes'] ?? 0,
    latencyUs: { p50: j['p50'] ?? Number.NaN, p99: j['p99'] ?? Number.NaN, mean: j['mean'] ?? Number.NaN, max: j['max'] ?? Number.NaN },
  };
}
