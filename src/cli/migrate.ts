import type { MigrationStatus, ServiceMigration } from '../control/migration.js';
import { formatApproxDuration } from '../duration.js';
import { ApiClient, CLIENT_FLAGS, CLIENT_USAGE, refusal } from './api-client.js';
import { parseFlags, usageError } from './args.js';

/**
 * `weft migrate status [SERVICE]`: per service, its mTLS mode, the mTLS and plaintext
 * callers its sidecars reported over the server's window, and whether it is ready for
 * strict mode (docs/migration.md). Exit 0 whatever the verdicts; 1 for an unknown service.
 */

const USAGE = `Usage: weft migrate status [SERVICE] [-n NAMESPACE] [-o table|json] [flags]

Who still calls each service in plaintext, from what the sidecars report to the server
over its migration window (weft server --migration-window, default 10m). See docs/migration.md.

  SERVICE                one service (default: every service)
  -n, --namespace NS     the service's namespace (default default); without SERVICE: only that namespace
  -o, --output FORMAT    table (default) or json (the API's answer, GET /v1/migration)
${CLIENT_USAGE}`;

/** `weft migrate SUBCOMMAND`. */
export async function migrateCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'status') return statusCommand(rest);
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  throw usageError('migrate', `unknown subcommand "${sub}"; the subcommand is status`);
}

async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(
    'migrate status',
    argv,
    { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o', default: 'table' }, ...CLIENT_FLAGS, help: { type: 'boolean', short: 'h', default: false } },
    true,
  );
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [service, extra] = positionals;
  if (extra !== undefined) throw usageError('migrate status', `unexpected argument "${extra}"; give at most one SERVICE`);
  if (values.output !== 'table' && values.output !== 'json') throw usageError('migrate status', '-o must be table or json');
  const query = new URLSearchParams();
  if (service !== undefined) query.set('service', service);
  if (values.namespace !== undefined) query.set('namespace', values.namespace);
  const client = await ApiClient.fromFlags(values);
  const answer = await client.call('GET', `/v1/migration${query.toString() !== '' ? `?${query.toString()}` : ''}`);
  if (answer.status !== 200) throw refusal(answer);
  const status = answer.json as unknown as MigrationStatus;
  process.stdout.write(values.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}

/** The human form: one table of services, then who calls in plaintext, per service. */
export function formatStatus(status: MigrationStatus): string {
  const window = formatApproxDuration(status.windowMs);
  if (status.services.length === 0) return 'No services yet: apply a Service resource or register an instance (docs/migration.md).\n';
  const out = [
    table([
      ['SERVICE', 'NAMESPACE', 'MODE', 'MTLS CALLERS', 'PLAINTEXT CALLERS', 'VERDICT'],
      ...status.services.map((s) => [s.service, s.namespace, s.mode, String(s.mtlsCallers), String(s.plaintextCallers), s.verdict]),
    ]),
  ];
  for (const s of status.services.filter((x) => x.plaintextCallers > 0)) out.push('', ...plaintextDetail(s, window));
  if (status.observedMs < status.windowMs) {
    out.push('', `Note: the server started ${formatApproxDuration(status.observedMs)} ago; callers from before that are not known (the window is ${window}).`);
  }
  return `${out.join('\n')}\n`;
}

function plaintextDetail(s: ServiceMigration, window: string): string[] {
  const dryRun = s.mode === 'strict (dry run)';
  const header = ['ADDRESS', 'REQUESTS', 'CONNECTIONS', ...(dryRun ? ['WOULD REJECT'] : []), 'LAST SEEN'];
  const rows = s.callers.plaintext.map((p) => [
    p.address === 'other' ? 'other (beyond the callers tracked)' : p.address,
    String(p.requests),
    String(p.connections),
    ...(dryRun ? [String(p.wouldReject)] : []),
    `${formatApproxDuration(p.lastSeenMsAgo)} ago`,
  ]);
  return [`${s.service} (${s.namespace}): plaintext callers in the last ${window}`, ...table([header, ...rows]).split('\n').map((l) => `  ${l}`)];
}

function table(lines: string[][]): string {
  const widths = lines[0]!.map((_, c) => Math.max(...lines.map((l) => l[c]!.length)));
  return lines.map((l) => l.map((cell, c) => (c === l.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}
