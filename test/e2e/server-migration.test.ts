/**
 * The migration view: an inbound sidecar's reports carry its callers; `weft migrate status`
 * names the plaintext ones, turns `ready for strict` once none was seen for a window
 * (`--migration-window 3s` here), shows a strict dry run as such, and bad reports get 400.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runWeft, tempDir } from '../helpers/weft.js';
import { createToken, curl, opensslCsr, startServer } from '../helpers/control.js';

interface Status {
  windowMs: number;
  observedMs: number;
  services: {
    service: string;
    namespace: string;
    mode: string;
    mtlsCallers: number;
    plaintextCallers: number;
    wouldReject: number;
    ready: boolean;
    verdict: string;
    callers: { mtls: { identity: string; requests: number }[]; plaintext: { address: string; requests: number; connections: number; lastSeen: string }[] };
  }[];
}

const WEB = 'spiffe://weft.local/ns/default/svc/web';
const mtls = (requests: number) => ({ identity: WEB, address: null, tls: true, requests, connections: 1, wouldReject: 0 });
const plaintext = (address: string, requests: number, wouldReject = 0) => ({ identity: null, address, tls: false, requests, connections: 1, wouldReject });

test('weft migrate status names plaintext callers until a window passes without them', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'data');
  const server = await startServer(t, data, ['--migration-window', '3s']);
  const token = await createToken(server.url, data, ['--service', 'api']);
  const csr = await opensslCsr(dir, 'api', 'spiffe://weft.local/ns/default/svc/api');
  const enrolled = await curl(data, ['--data-binary', JSON.stringify({ token, csr }), `${server.url}/v1/enroll`]);
  assert.equal(enrolled.status, 200, enrolled.body);
  await writeFile(join(dir, 'api.pem'), (JSON.parse(enrolled.body) as { certificate: string }).certificate);
  const api = ['--cert', join(dir, 'api.pem'), '--key', join(dir, 'api.key')];
  const registered = await curl(data, [...api, '--data-binary', JSON.stringify({ address: '198.18.0.2', port: 8443 }), `${server.url}/v1/catalog/instances`]);
  assert.equal(registered.status, 200, registered.body);
  const id = (JSON.parse(registered.body) as { id: string }).id;

  /** Sends a report (from a file: a long caller list does not fit in one argument). */
  const report = async (body: unknown) => {
    await writeFile(join(dir, 'report.json'), JSON.stringify(body));
    return curl(data, [...api, '-X', 'PUT', '--data-binary', `@${join(dir, 'report.json')}`, `${server.url}/v1/catalog/instances/${id}/report`]);
  };
  const migrate = async (...args: string[]) => {
    const r = await runWeft(['migrate', 'status', ...args, '--server', server.url, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const status = async () => JSON.parse(await migrate('api', '-o', 'json')) as Status;

  // One mTLS caller (web) and one plaintext caller.
  assert.equal((await report({ healthy: true, reason: null, callers: [mtls(12), plaintext('198.18.0.5', 3)] })).status, 200);
  const plaintextAt = Date.now();
  const table = await migrate('api');
  assert.match(table, /^SERVICE\s+NAMESPACE\s+MODE\s+MTLS CALLERS\s+PLAINTEXT CALLERS\s+VERDICT$/m);
  assert.match(table, /^api\s+default\s+permissive\s+1\s+1\s+1 plaintext caller: 198\.18\.0\.5$/m);
  assert.match(table, /^api \(default\): plaintext callers in the last 3s$/m);
  assert.match(table, /^\s+198\.18\.0\.5\s+3\s+1\s+\d+s ago$/m, 'who, how many requests, when');
  let s = (await status()).services[0]!;
  assert.deepEqual([s.ready, s.plaintextCallers, s.mtlsCallers], [false, 1, 1]);
  assert.deepEqual(s.callers.mtls.map((c) => [c.identity, c.requests]), [[WEB, 12]]);
  assert.equal(s.callers.plaintext[0]!.address, '198.18.0.5');

  // Bad reports are refused whole: nothing of them is counted.
  const negative = await report({ healthy: true, callers: [plaintext('198.18.0.9', -1)] });
  assert.equal(negative.status, 400);
  assert.match(negative.body, /WEFT_E_BAD_REQUEST.*callers\[0\]\.requests.*non-negative integer/);
  const tooMany = await report({ healthy: true, callers: Array.from({ length: 1001 }, (_, i) => plaintext(`10.1.${i >> 8}.${i & 255}`, 1)) });
  assert.equal(tooMany.status, 400);
  assert.match(tooMany.body, /at most 1000/);
  assert.equal((await report({ healthy: true, callers: [{ ...plaintext('198.18.0.9', 1), identity: WEB }] })).status, 400);
  assert.equal((await report({ healthy: true, callers: 'all' })).status, 400);
  assert.equal((await status()).services[0]!.plaintextCallers, 1, 'the refused reports added nothing');
  assert.equal((await report({ healthy: true, callers: Array.from({ length: 1000 }, (_, i) => plaintext(`10.1.${i >> 8}.${i & 255}`, 0, 0)).map((c) => ({ ...c, connections: 0 })) })).status, 200, '1000 entries are accepted');

  // From now on only mTLS: once 3 s have passed since the plaintext report, the verdict turns.
  let ready = false;
  while (!ready && Date.now() - plaintextAt < 10_000) {
    assert.equal((await report({ healthy: true, callers: [mtls(5)] })).status, 200);
    s = (await status()).services[0]!;
    ready = s.ready;
    if (!ready) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(ready, 'ready within 10 s');
  assert.ok(Date.now() - plaintextAt >= 3000, 'not before the window passed');
  assert.equal(s.verdict, 'ready for strict');
  assert.equal(s.plaintextCallers, 0);
  assert.match(await migrate('api'), /^api\s+default\s+permissive\s+1\s+0\s+ready for strict$/m);

  // A strict dry run: still served, shown as such, with what strict would refuse.
  await writeFile(join(dir, 'dry-run.yaml'), 'kind: Service\nmetadata: { name: api }\nspec:\n  mtls: { mode: strict, enforce: false }\n---\nkind: Service\nmetadata: { name: db }\nspec: { protocol: tcp }\n');
  const applied = await runWeft(['apply', '-f', join(dir, 'dry-run.yaml'), '--server', server.url, '--data', data]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal((await report({ healthy: true, callers: [mtls(2), plaintext('198.18.0.7', 4, 4)] })).status, 200);
  s = (await status()).services[0]!;
  assert.deepEqual([s.mode, s.verdict, s.wouldReject], ['strict (dry run)', '1 plaintext caller: 198.18.0.7', 4]);
  const all = await migrate();
  assert.match(all, /^api\s+default\s+strict \(dry run\)\s+1\s+1\s+1 plaintext caller: 198\.18\.0\.7$/m);
  assert.match(all, /^\s+ADDRESS\s+REQUESTS\s+CONNECTIONS\s+WOULD REJECT\s+LAST SEEN$/m);
  assert.match(all, /^db\s+default\s+permissive\s+0\s+0\s+ready for strict \(no traffic seen in the last 3s\)$/m, 'a service without traffic is listed');

  // Enforced strict: just "strict".
  await writeFile(join(dir, 'strict.yaml'), 'kind: Service\nmetadata: { name: api }\nspec:\n  mtls: { mode: strict }\n');
  assert.equal((await runWeft(['apply', '-f', join(dir, 'strict.yaml'), '--server', server.url, '--data', data])).code, 0);
  s = (await status()).services[0]!;
  assert.deepEqual([s.mode, s.verdict, s.ready], ['strict', 'strict', true]);

  // An unknown service is an error (exit 1); the API needs the admin token.
  const unknown = await runWeft(['migrate', 'status', 'nope', '--server', server.url, '--data', data]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no service nope in namespace default: it has no Service resource and no registered instance \(known there: api, db\)/);
  assert.equal((await curl(data, [`${server.url}/v1/migration`])).status, 401);
  assert.equal((await curl(data, [...api, `${server.url}/v1/migration`])).status, 401, 'a sidecar certificate is not enough');
});
