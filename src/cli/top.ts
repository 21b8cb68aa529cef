import type { TopAnswer } from '../control/telemetry-wire.js';
import { formatDuration } from '../duration.js';
import { ApiClient, CLIENT_FLAGS, CLIENT_USAGE, refusal } from './api-client.js';
import { durationFlag, parseFlags, usageError } from './args.js';
import { formatMs } from './tap.js';

/**
 * `weft top`: the busiest routes of the mesh over a short window, from what the sidecars
 * report to the control plane (`GET /v1/top`), refreshed every interval.
 */

const USAGE = `Usage: weft top [-n NAMESPACE] [--window 10s] [--interval 2s] [--once] [flags]

The busiest routes over the last WINDOW (1s–60s), from the sidecars' telemetry on this
server replica: SOURCE, DESTINATION, ROUTE, RPS (requests per second), SUCCESS (share not
answered 5xx), P50 and P99 latency. Redraws every INTERVAL (a plain table per interval
when the output is not a terminal) until Ctrl-C.

  -n, --namespace NS     only what sidecars of this namespace report
  --window D             the window the figures cover (default 10s)
  --interval D           how often to refresh (default 2s, at least 1s)
  --once                 print one table and exit
${CLIENT_USAGE}`;

/** `weft top …`. */
export async function topCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('top', argv, {
    namespace: { type: 'string', short: 'n' },
    window: { type: 'string', default: '10s' },
    interval: { type: 'string', default: '2s' },
    once: { type: 'boolean', default: false },
    ...CLIENT_FLAGS,
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const windowMs = durationFlag('--window', values.window);
  if (windowMs < 1000 || windowMs > 60_000) throw usageError('top', `--window must be between 1s and 60s (the server keeps 60 s), got ${values.window}`);
  const intervalMs = durationFlag('--interval', values.interval);
  if (intervalMs < 1000) throw usageError('top', `--interval must be at least 1s, got ${values.interval}`);
  const query = new URLSearchParams({ window: formatDuration(windowMs) });
  if (values.namespace !== undefined) query.set('namespace', values.namespace);
  const client = await ApiClient.fromFlags(values);
  const fetchTop = async (): Promise<TopAnswer> => {
    const answer = await client.call('GET', `/v1/top?${query.toString()}`);
    if (answer.status !== 200) throw refusal(answer);
    return answer.json as unknown as TopAnswer;
  };
  if (values.once) {
    process.stdout.write(formatTop(await fetchTop()));
    return 0;
  }
  const tty = process.stdout.isTTY === true;
  let stopped = false;
  let wake: () => void = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    while (!stopped) {
      const top = await fetchTop();
      const stamp = new Date().toLocaleTimeString('en-GB', { hour12: false });
      const text = `weft top: ${values.namespace !== undefined ? `namespace ${values.namespace}, ` : ''}last ${top.windowSeconds}s, ${stamp}\n\n${formatTop(top)}`;
      // A terminal: redraw in place (cursor home, clear screen); else one table per interval.
      process.stdout.write(tty ? `\x1b[H\x1b[2J${text}` : `${text}\n`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.removeListener('SIGINT', stop);
    process.removeListener('SIGTERM', stop);
  }
  return 0;
}

/** The table: SOURCE, DESTINATION, ROUTE, RPS, SUCCESS, P50, P99 (a plaintext hop's source says so). */
export function formatTop(top: TopAnswer): string {
  if (top.routes.length === 0) return `No requests in the last ${top.windowSeconds}s (sidecars report every 2 s to the replica they follow; is traffic flowing?)\n`;
  const rows = [
    ['SOURCE', 'DESTINATION', 'ROUTE', 'RPS', 'SUCCESS', 'P50', 'P99'],
    ...top.routes.map((r) => [
      r.tls ? r.source : `${r.source} (plaintext)`,
      r.destination,
      r.route,
      r.requestsPerSecond >= 100 ? r.requestsPerSecond.toFixed(0) : r.requestsPerSecond.toFixed(1),
      r.successRate === null ? '-' : `${(Math.floor(r.successRate * 1000) / 10).toFixed(1)}%`,
      r.p50Ms === null ? '-' : formatMs(r.p50Ms),
      r.p99Ms === null ? '-' : formatMs(r.p99Ms),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((l) => l[c]!.length)));
  const numeric = (c: number) => c >= 3;
  return `${rows.map((l) => l.map((cell, c) => (numeric(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n')}\n`;
}
