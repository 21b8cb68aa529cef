import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MigrationTracker, parseCallers, serviceModes, type CallerReport, type ServiceMode } from '../../src/control/migration.js';
import { Catalog } from '../../src/control/catalog.js';
import { SqliteStore } from '../../src/control/store/sqlite-store.js';

const WEB = 'spiffe://weft.local/ns/default/svc/web';
const mtlsCaller = (identity: string, requests = 1): CallerReport => ({ identity, address: null, tls: true, requests, connections: 1, wouldReject: 0 });
const plainCaller = (address: string, requests = 1, wouldReject = 0): CallerReport => ({ identity: null, address, tls: false, requests, connections: 1, wouldReject });
const permissive: ServiceMode = { namespace: 'default', service: 'api', mtls: { mode: 'permissive', enforce: true } };
const dryRun: ServiceMode = { ...permissive, mtls: { mode: 'strict', enforce: false } };
const strict: ServiceMode = { ...permissive, mtls: { mode: 'strict', enforce: true } };
const MIN = 60_000;

/** A tracker on a clock the test moves, started a whole window ago (so the window is fully observed). */
function tracker(options: { maxCallers?: number } = {}) {
  const clock = { now: 1_700_000_040_000 }; // a whole minute: buckets (a tenth of the window) start at T0
  const t = new MigrationTracker({ windowMs: 10 * MIN, now: () => clock.now, ...options });
  clock.now += 10 * MIN;
  return { t, clock, one: (mode = permissive) => t.status([mode]).services[0]! };
}

test('callers count over the window and leave it with their bucket', () => {
  const { t, clock, one } = tracker();
  t.record('default', 'api', [mtlsCaller(WEB, 12), plainCaller('198.18.0.5', 3)]);
  clock.now += 30_000;
  t.record('default', 'api', [mtlsCaller(WEB, 8), { ...plainCaller('198.18.0.5', 0), connections: 0 }]); // no traffic: ignored
  let s = one();
  assert.equal(s.mtlsCallers, 1);
  assert.equal(s.callers.mtls[0]!.requests, 20);
  assert.equal(s.callers.mtls[0]!.connections, 2);
  assert.equal(s.callers.mtls[0]!.lastSeenMsAgo, 0);
  assert.equal(s.callers.plaintext[0]!.lastSeenMsAgo, 30_000, 'a report with 0 counts does not refresh last seen');
  assert.equal(s.verdict, '1 plaintext caller: 198.18.0.5');
  assert.equal(s.ready, false);

  // A bucket (a tenth of the window, T0 to T0+1m) stays while any of it is in the window.
  clock.now += 9 * MIN; // T0+9m30s
  t.record('default', 'api', [mtlsCaller(WEB)]);
  clock.now += 1 * MIN; // T0+10m30s: the window starts at T0+30s
  assert.equal(one().plaintextCallers, 1, 'still inside the window');
  assert.equal(one().callers.mtls[0]!.requests, 21);
  clock.now += 30_000; // T0+11m: the first bucket has left
  s = one();
  assert.equal(s.plaintextCallers, 0);
  assert.deepEqual(s.callers.mtls.map((c) => c.requests), [1], 'the older mTLS requests left with their buckets');
  assert.equal(s.verdict, 'ready for strict');
  assert.equal(s.ready, true);

  clock.now += 11 * MIN;
  s = one();
  assert.equal(s.mtlsCallers, 0);
  assert.equal(s.verdict, 'ready for strict (no traffic seen in the last 10m)');
  assert.deepEqual(t.tracked(), [], 'a service with nothing left in the window is dropped');
});

test('verdicts per mode', () => {
  const { t, one } = tracker();
  assert.equal(one().verdict, 'ready for strict (no traffic seen in the last 10m)');
  t.record('default', 'api', [mtlsCaller(WEB)]);
  assert.deepEqual([one().mode, one().verdict, one().ready], ['permissive', 'ready for strict', true]);
  assert.deepEqual([one(dryRun).mode, one(dryRun).verdict], ['strict (dry run)', 'ready for strict']);
  t.record('default', 'api', [plainCaller('198.18.0.5', 3, 3), plainCaller('198.18.0.6', 9, 9)]);
  const d = one(dryRun);
  assert.equal(d.verdict, '2 plaintext callers: 198.18.0.6, 198.18.0.5', 'busiest first');
  assert.equal(d.plaintextCallers, 2);
  assert.equal(d.wouldReject, 12);
  assert.equal(one().verdict, '2 plaintext callers: 198.18.0.6, 198.18.0.5');
  // Enforced strict: plaintext is refused at the door and refusals are not reported.
  assert.deepEqual([one(strict).mode, one(strict).verdict, one(strict).ready], ['strict', 'strict', true]);
  assert.equal(one(strict).plaintextCallers, 2, 'the callers seen before are still listed');

  for (let i = 10; i < 20; i++) t.record('default', 'api', [plainCaller(`198.18.1.${i}`)]);
  assert.match(one().verdict, /^12 plaintext callers: 198\.18\.0\.6, 198\.18\.0\.5, 198\.18\.1\.10, 198\.18\.1\.11, 198\.18\.1\.12, and 7 more$/);
});

test('a window not yet observed in full says so', () => {
  let now = 0;
  const t = new MigrationTracker({ windowMs: 10 * MIN, now: () => now });
  now = 2 * MIN;
  const s = t.status([permissive]);
  assert.equal(s.observedMs, 2 * MIN);
  assert.equal(s.services[0]!.verdict, 'ready for strict (no traffic seen since the server started 2m ago)');
  t.record('default', 'api', [mtlsCaller(WEB)]);
  assert.equal(t.status([permissive]).services[0]!.verdict, 'ready for strict (only mTLS callers since the server started 2m ago)');
  now = 11 * MIN;
  assert.equal(t.status([permissive]).observedMs, 10 * MIN);
  assert.equal(t.status([permissive]).services[0]!.verdict, 'ready for strict');
});

test('memory is bounded: callers beyond the cap go to one overflow caller per kind', () => {
  const { t, one } = tracker();
  const batch = (from: number) => Array.from({ length: 1000 }, (_, i) => plainCaller(`10.0.${(from + i) >> 8}.${(from + i) & 255}`));
  t.record('default', 'api', batch(0));
  t.record('default', 'api', batch(1000));
  t.record('default', 'api', [mtlsCaller(WEB, 5), mtlsCaller('spiffe://weft.local/ns/default/svc/batch', 7)]);
  const s = one();
  assert.equal(s.plaintextCallers, 1001, '1000 callers and the overflow');
  assert.equal(s.mtlsCallers, 1, 'the cap is reached: new mTLS callers go to the overflow too');
  assert.deepEqual(s.callers.mtls.map((c) => [c.identity, c.requests]), [['other', 12]]);
  const other = s.callers.plaintext.find((p) => p.address === 'other')!;
  assert.equal(other.requests, 1000);
  // A sidecar's own overflow (address "other") adds to the same caller.
  t.record('default', 'api', [plainCaller('other', 4)]);
  assert.equal(one().callers.plaintext.find((p) => p.address === 'other')!.requests, 1004);
});

test('callers from a report are validated', () => {
  assert.deepEqual(parseCallers(undefined), []);
  const good = [
    { identity: WEB, address: null, tls: true, requests: 12, connections: 1, wouldReject: 0 },
    { identity: null, address: '198.18.0.5', tls: false, requests: 3, connections: 1, wouldReject: 3 },
    { identity: null, address: 'other', tls: false, requests: 0, connections: 2, wouldReject: 0 },
  ];
  assert.deepEqual(parseCallers(good), good);
  const bad = (callers: unknown, message: RegExp) => assert.throws(() => parseCallers(callers), (err: Error & { code?: string }) => err.code === 'WEFT_E_BAD_REQUEST' && message.test(err.message));
  bad({}, /must be an array/);
  bad([{ ...good[1], requests: -1 }], /"callers\[0\]\.requests" must be a non-negative integer/);
  bad([good[0], { ...good[1], connections: 1.5 }], /"callers\[1\]\.connections"/);
  bad([{ ...good[1], wouldReject: '3' }], /wouldReject/);
  bad(Array.from({ length: 1001 }, () => good[1]), /1001 entries, at most 1000/);
  bad([{ ...good[1], address: 'api.local' }], /IP address/);
  bad([{ ...good[0], identity: 'web' }], /SPIFFE ID/);
  bad([{ ...good[1], identity: WEB }], /plaintext caller .* no verified identity/);
  bad([{ ...good[0], identity: null }], /needs an identity or an address/);
  bad([{ ...good[0], tls: 'yes' }], /tls/);
});

test('modes come from the Mesh and Service resources; every known service is listed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-migration-'));
  const store = SqliteStore.open({ dataDir: dir });
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const catalog = new Catalog(store, { ttlMs: 15_000, deregisterAfterMs: 600_000 });
  await catalog.register({ service: 'api', namespace: 'default', address: '198.18.0.2', port: 8443, metadata: {} });
  await store.put({ kind: 'Service', namespace: 'shop', name: 'cart', spec: { protocol: 'http', mtls: { mode: 'strict', enforce: false } } });
  await store.put({ kind: 'Service', namespace: 'shop', name: 'db', spec: { protocol: 'tcp', mtls: { mode: 'strict', enforce: true } } });
  const modes = async () => (await serviceModes(store, catalog, [{ namespace: 'default', service: 'gone' }])).map((m) => [`${m.namespace}/${m.service}`, m.mtls.mode, m.mtls.enforce]);
  assert.deepEqual(await modes(), [
    ['default/api', 'permissive', true],
    ['default/gone', 'permissive', true],
    ['shop/cart', 'strict', false],
    ['shop/db', 'strict', true],
  ]);
  await store.put({ kind: 'Mesh', namespace: 'weft-system', name: 'default', spec: { mtls: { mode: 'permissive', allowPermissive: false }, authorization: { defaultAction: 'allow' } } });
  assert.ok((await modes()).every(([, mode, enforce]) => mode === 'strict' && enforce === true), 'allowPermissive: false makes every service strict');
});
