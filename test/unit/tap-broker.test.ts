import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SIDECAR_GRACE_MS, TapBroker } from '../../src/control/tap-broker.js';
import type { TapEvent } from '../../src/control/telemetry-wire.js';

function event(sessions: string[], path = '/orders', method = 'GET'): TapEvent {
  return {
    direction: 'inbound',
    source: 'web',
    destination: 'api',
    tls: true,
    sessions,
    time: '2024-01-01T00:00:00.000Z',
    sourceIdentity: 'spiffe://weft.local/ns/default/svc/web',
    protocol: 'http/1.1',
    method,
    path,
    authority: 'api',
    route: '-',
    status: 200,
    error: null,
    latencyMs: 1.5,
    upstream: '127.0.0.1:8080',
    attempts: 1,
    traceId: null,
  };
}

test('sessions have a version that changes with the set; long polls wake on it', async () => {
  const broker = new TapBroker();
  const empty = broker.sessions('default', 'api');
  assert.deepEqual(empty.sessions, []);
  // A poll with an old version answers at once.
  assert.deepEqual(await broker.wait('default', 'api', 'stale', 1000, 'sc1'), empty);
  // A poll with the current version waits; opening a session wakes it with the new set.
  const polled = broker.wait('default', 'api', empty.version, 5000, 'sc1');
  const other = broker.wait('default', 'web', broker.sessions('default', 'web').version, 50, 'sc2');
  assert.equal(broker.sidecars('default', 'api'), 1);
  const sub = broker.open('default', 'api', { path: '/orders', method: 'GET' });
  const woke = await polled;
  assert.ok(woke !== null);
  assert.notEqual(woke.version, empty.version);
  assert.deepEqual(woke.sessions, [{ id: sub.id, path: '/orders', method: 'GET' }]);
  assert.equal(await other, null, 'another service is not woken: its poll times out');
  assert.equal(broker.sessionCount, 1);
  // Closing changes the version again.
  const again = broker.wait('default', 'api', woke.version, 5000, 'sc1');
  sub.close();
  const after = await again;
  assert.ok(after !== null && after.sessions.length === 0 && after.version !== woke.version);
  assert.equal(broker.sessionCount, 0);
  assert.equal(await sub.next(), null, 'a closed session has no more events');
});

test('a long poll ends when its client goes', async () => {
  const broker = new TapBroker();
  const gone = new AbortController();
  const v = broker.sessions('default', 'api').version;
  const started = Date.now();
  const poll = broker.wait('default', 'api', v, 30_000, 'sc1', gone.signal);
  gone.abort();
  assert.equal(await poll, null);
  assert.ok(Date.now() - started < 1000);
});

test('events go to the sessions they name, of the posting service only, and matching the filter', async () => {
  const broker = new TapBroker();
  const all = broker.open('default', 'api', { path: null, method: null });
  const orders = broker.open('default', 'api', { path: '/orders', method: 'POST' });
  const web = broker.open('default', 'web', { path: null, method: null });
  assert.equal(broker.deliver('default', 'api', [event([all.id, orders.id, 'ffff', web.id])]), 1, 'GET does not match the POST session; unknown and other-service ids are ignored');
  assert.equal(broker.deliver('default', 'api', [event([orders.id], '/orders/7', 'POST')]), 1);
  assert.equal(broker.deliver('default', 'api', [event([orders.id], '/users', 'POST')]), 0, 'the path prefix is checked too');
  assert.equal(broker.deliver('shop', 'api', [event([all.id])]), 0, 'another namespace cannot feed it');
  assert.equal((await all.next())!.path, '/orders');
  assert.equal((await orders.next())!.path, '/orders/7');
  // A waiting next() gets the event as it comes.
  const waiting = web.next();
  broker.deliver('default', 'web', [event([web.id], '/home')]);
  assert.equal((await waiting)!.path, '/home');
  for (const s of [all, orders, web]) s.close();
});

test('a session that lags drops beyond its queue and counts the drops', async () => {
  const broker = new TapBroker({ queueLimit: 3 });
  const sub = broker.open('default', 'api', { path: null, method: null });
  const delivered = broker.deliver('default', 'api', Array.from({ length: 5 }, (_, i) => event([sub.id], `/${i}`)));
  assert.equal(delivered, 3);
  assert.equal(sub.dropped, 2);
  const paths: string[] = [];
  setTimeout(() => sub.close(), 20);
  for await (const e of sub) paths.push(e.path);
  assert.deepEqual(paths, ['/0', '/1', '/2'], 'the queued events, then the end once closed');
});

test('sidecars count while they poll and for a grace period after', async () => {
  const clock = { now: 0 };
  const broker = new TapBroker({ now: () => clock.now });
  const v = broker.sessions('default', 'api').version;
  const a = broker.wait('default', 'api', v, 20, 'a');
  const b = broker.wait('default', 'api', v, 20, 'b');
  const a2 = broker.wait('default', 'api', v, 20, 'a'); // the same sidecar twice counts once
  assert.equal(broker.sidecars('default', 'api'), 2);
  await Promise.all([a, b, a2]);
  assert.equal(broker.sidecars('default', 'api'), 2, 'between two polls');
  clock.now += SIDECAR_GRACE_MS + 1;
  assert.equal(broker.sidecars('default', 'api'), 0);
});
