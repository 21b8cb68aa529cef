import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTools } from '../../bench/lib/env.js';
import { streamModule } from '../../bench/topologies/nginx.js';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const TOPOLOGIES = ['direct', 'weft', 'nginx', 'haproxy'];
/** Tables the quick run must produce (their `####` titles start with these). */
const TABLES = ['Mesh tax, HTTP/1.1 keep-alive, GET /small', 'Mesh tax, HTTP/1.1 keep-alive, GET /1k', 'Latency at', 'Proxy cost at', 'L4 pairs', 'Bulk:', 'Connection churn', 'Start-up'];

/** Why the benchmark cannot run here, or null. */
function missingPrerequisite(): string | null {
  const { missing } = checkTools();
  if (missing.length > 0) return `missing ${missing.join(', ')} (scripts/install-bench-deps.sh)`;
  const stream = streamModule();
  if (stream.error) return stream.error;
  return null;
}

/** `#### title` → the first cell of every row of the markdown table under it. */
function tablesOf(report: string): Map<string, string[]> {
  const tables = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of report.split('\n')) {
    if (line.startsWith('#### ')) {
      current = [];
      tables.set(line.slice(5), current);
    } else if (current && line.startsWith('|') && !line.startsWith('|---')) {
      current.push(line.split('|')[1]!.trim());
    } else if (current && line.startsWith('#')) {
      current = null;
    }
  }
  return tables;
}

test('bench --quick produces a table with every topology for every scenario', { timeout: 240_000 }, async (t) => {
  const reason = missingPrerequisite();
  if (reason !== null) {
    if (process.env['CI'] === 'true') assert.fail(`the benchmark harness cannot run under CI: ${reason}`);
    t.diagnostic(`skipped: ${reason}`);
    process.stdout.write(`# bench-quick skipped: ${reason}\n`);
    t.skip(reason);
    return;
  }
  const out = await mkdtemp(join(tmpdir(), 'weft-bench-quick-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const started = Date.now();
  const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [RUN, '--quick', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), 200_000);
    child.once('exit', (c, signal) => {
      clearTimeout(timer);
      resolve({ code: c ?? (signal ? 128 : 1), stderr: err });
    });
  });
  t.diagnostic(`quick run took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(code, 0, `bench --quick failed (exit ${code}):\n${stderr.slice(-4000)}`);

  const report = await readFile(join(out, 'report.md'), 'utf8');
  const tables = tablesOf(report);
  for (const prefix of TABLES) {
    const found = [...tables.entries()].filter(([title]) => title.startsWith(prefix));
    assert.equal(found.length, 1, `report.md has no table "${prefix}…"; tables: ${[...tables.keys()].join(' / ')}`);
    const [title, rows] = found[0]!;
    for (const topology of TOPOLOGIES) assert.ok(rows.includes(topology), `table "${title}" has no row for ${topology}; rows: ${rows.join(', ')}`);
    assert.ok(rows.includes('*weft / nginx*') && rows.includes('*weft / haproxy*'), `table "${title}" lacks the ratio rows`);
  }
  for (const needle of ['Node', 'OpenSSL', 'nginx', 'HAProxy', 'wrk', 'CPU', 'pinning']) assert.match(report, new RegExp(`^\\| ${needle} \\|`, 'm'));
  const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as { scenarios: unknown[]; failures: unknown[] };
  assert.equal(results.scenarios.length, 6);
  assert.deepEqual(results.failures, []);
  assert.match(await readFile(join(out, 'chart.svg'), 'utf8'), /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
});
