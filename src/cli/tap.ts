import type { TapLine } from '../control/telemetry-wire.js';
import { formatDuration } from '../duration.js';
import { WeftError } from '../errors.js';
import { ApiClient, CLIENT_FLAGS, CLIENT_USAGE } from './api-client.js';
import { durationFlag, parseFlags, usageError } from './args.js';

/**
 * `weft tap SERVICE`: the live requests of one service, from its sidecars through the
 * control plane (`GET /v1/tap`), one line each as they come (docs/observability.md).
 */

const USAGE = `Usage: weft tap SERVICE [-n NAMESPACE] [--path PREFIX] [--method M] [--json] [--count N] [--timeout D] [flags]

Shows the requests of SERVICE as its sidecars see them, live (inbound and outbound), one
line each: TIME DIRECTION SOURCE -> DESTINATION METHOD PATH route=ROUTE STATUS [weft-error] LATENCY.
Nothing is stored; only the sidecars that follow this server replica's taps are seen.

  SERVICE                the service to tap
  -n, --namespace NS     its namespace (default default)
  --path PREFIX          only requests whose path starts with PREFIX (such as /orders)
  --method M             only requests with this method (such as POST)
  --json                 print the server's NDJSON lines as they are (a started line, then request lines)
  --count N              exit after N requests
  --timeout D            exit after D (such as 30s); with --count, exit 1 when fewer came
${CLIENT_USAGE}`;

/** `weft tap SERVICE …`. */
export async function tapCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'tap',
    argv,
    {
      namespace: { type: 'string', short: 'n' },
      path: { type: 'string' },
      method: { type: 'string' },
      json: { type: 'boolean', default: false },
      count: { type: 'string' },
      timeout: { type: 'string' },
      ...CLIENT_FLAGS,
      help: { type: 'boolean', short: 'h', default: false },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [service, extra] = positionals;
  if (service === undefined) throw usageError('tap', 'give the SERVICE to tap');
  if (extra !== undefined) throw usageError('tap', `unexpected argument "${extra}"; give one SERVICE`);
  if (values.path !== undefined && !values.path.startsWith('/')) throw usageError('tap', `--path must start with "/", got "${values.path}"`);
  if (values.method !== undefined && !/^[A-Za-z]+$/.test(values.method)) throw usageError('tap', `--method must be an HTTP method such as GET, got "${values.method}"`);
  let count: number | undefined;
  if (values.count !== undefined) {
    count = Number(values.count);
    if (!Number.isInteger(count) || count < 1) throw usageError('tap', `--count must be a positive integer, got "${values.count}"`);
  }
  const timeoutMs = values.timeout === undefined ? undefined : durationFlag('--timeout', values.timeout);
  const namespace = values.namespace ?? 'default';
  const query = new URLSearchParams({ service, namespace });
  if (values.path !== undefined) query.set('path', values.path);
  if (values.method !== undefined) query.set('method', values.method.toUpperCase());

  const client = await ApiClient.fromFlags(values);
  const stream = await client.stream(`/v1/tap?${query.toString()}`);
  let seen = 0;
  let timedOut = false;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), stream.close()), timeoutMs);
  let stopped = false;
  const stop = () => ((stopped = true), stream.close());
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const format = new LineFormat();
  try {
    for await (const text of stream.lines) {
      let line: TapLine;
      try {
        line = JSON.parse(text) as TapLine;
      } catch {
        throw new WeftError('WEFT_E_SERVER', `the server sent a line that is not JSON: ${text.slice(0, 100)}`);
      }
      if (values.json) process.stdout.write(`${text}\n`);
      if (line.type === 'started') {
        const who = line.namespace === 'default' ? line.service : `${line.namespace}/${line.service}`;
        const hint = line.sidecars === 0 ? `; no sidecar of ${who} follows this server's taps yet, requests show once one does` : '';
        process.stderr.write(`tapping ${who} (${line.sidecars} sidecar${line.sidecars === 1 ? '' : 's'})…${hint}\n`);
        continue;
      }
      if (line.type !== 'request') continue;
      if (!values.json) process.stdout.write(`${format.line(line)}\n`);
      if (count !== undefined && ++seen >= count) break;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
    stream.close();
  }
  if (count !== undefined && seen < count && timedOut) {
    process.stderr.write(`weft tap: ${seen} of ${count} requests within ${formatDuration(timeoutMs!)}\n`);
    return 1;
  }
  if (!timedOut && !stopped && (count === undefined || seen < count)) {
    process.stderr.write('weft tap: the server ended the tap (did it stop or restart?)\n');
    return 1;
  }
  return 0;
}

/** Formats request lines with columns that widen as longer values come (and never narrow). */
export class LineFormat {
  /** Starting widths: time, direction, source -> destination, method, path, route, status. */
  readonly #widths: number[] = [12, 3, 20, 6, 16, 20, 3];

  /** `TIME DIRECTION SOURCE -> DESTINATION METHOD PATH route=R STATUS [weft-error] LATENCYms`. */
  line(r: Extract<TapLine, { type: 'request' }>): string {
    const time = new Date(r.time);
    const clock = Number.isNaN(time.getTime()) ? r.time : `${pad2(time.getHours())}:${pad2(time.getMinutes())}:${pad2(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')}`;
    const cells = [
      clock,
      r.direction === 'inbound' ? 'in' : 'out',
      `${r.source} -> ${r.destination}${r.tls ? '' : ' (plaintext)'}`,
      r.method,
      r.path.length > 80 ? `${r.path.slice(0, 79)}…` : r.path,
      `route=${r.route}`,
      `${r.status}${r.error !== null ? ` ${r.error}` : ''}`,
    ];
    const padded = cells.map((cell, i) => {
      const w = Math.max(this.#widths[i] ?? 0, cell.length);
      this.#widths[i] = w;
      return cell.padEnd(w);
    });
    return `${padded.join('  ')}  ${formatMs(r.latencyMs).padStart(8)}`;
  }
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Milliseconds with 2 significant decimals below 10 ms. */
export function formatMs(ms: number): string {
  return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toString()}ms`;
}
