import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runWeft, startWeft } from './weft.js';

/** Helpers for tests of `weft server`: start it, call it with curl, make CSRs with openssl. */

export const run = promisify(execFile);

export async function startServer(t: TestContext, data: string, extra: string[] = []) {
  const proc = startWeft(t, ['server', '--data', data, '--listen', '127.0.0.1:0', ...extra]);
  const ready = await proc.waitFor('server ready');
  return { proc, url: `https://${ready['listen'] as string}` };
}

/** curl with the server's CA; returns the HTTP status, headers and body. */
export async function curl(data: string, args: string[]): Promise<{ status: number; headers: string; body: string }> {
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', '--cacert', join(data, 'ca', 'bundle.pem'), '-D', '-', ...args]);
  const split = stdout.indexOf('\r\n\r\n');
  const headers = stdout.slice(0, split);
  return { status: Number(/^HTTP\/\S+ (\d+)/.exec(headers)?.[1]), headers, body: stdout.slice(split + 4) };
}

/** A P-256 key and a CSR for `spiffeId`, made by openssl; returns the CSR's PEM. */
export async function opensslCsr(dir: string, name: string, spiffeId: string): Promise<string> {
  await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`, '-addext', `subjectAltName=URI:${spiffeId}`], { cwd: dir });
  return readFile(join(dir, `${name}.csr`), 'utf8');
}

export async function createToken(url: string, data: string, args: string[]): Promise<string> {
  const r = await runWeft(['token', 'create', '--server', url, '--data', data, ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /join token for spiffe:\/\//);
  return r.stdout.trim();
}

