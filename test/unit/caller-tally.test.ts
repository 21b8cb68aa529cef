import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallerTally, type CallerReport } from '../../src/proxy/caller-tally.js';

const WEB = 'spiffe://example.org/ns/default/svc/web';
const BILLING = 'spiffe://example.org/ns/shop/svc/billing';

const byKey = (reports: CallerReport[]) => new Map(reports.map((r) => [r.identity ?? `${r.address}`, r]));

test('mTLS callers are keyed by identity, plaintext callers by source IP (IPv4-mapped shown as IPv4)', () => {
  const tally = new CallerTally();
  const a = tally.connection(WEB, '10.0.0.1', true);
  const b = tally.connection(WEB, '10.0.0.2', true);
  assert.strictEqual(a, b, 'one caller, one counter object');
  a.requests += 3;
  const p = tally.connection(null, '::ffff:10.0.0.9', false);
  assert.strictEqual(tally.connection(null, '10.0.0.9', false), p);
  p.requests++;
  p.wouldReject++;
  tally.connection(null, '2001:db8::1', false);
  const reports = byKey(tally.take());
  assert.deepEqual(reports.get(WEB), { identity: WEB, address: null, tls: true, requests: 3, connections: 2, wouldReject: 0 });
  assert.deepEqual(reports.get('10.0.0.9'), { identity: null, address: '10.0.0.9', tls: false, requests: 1, connections: 2, wouldReject: 1 });
  assert.deepEqual(reports.get('2001:db8::1'), { identity: null, address: '2001:db8::1', tls: false, requests: 0, connections: 1, wouldReject: 0 });
  assert.equal(reports.size, 3);
});

test('take returns deltas and resets them; counters held by open connections keep counting', () => {
  const tally = new CallerTally();
  const c = tally.connection(WEB, null, true);
  c.requests += 2;
  assert.equal(tally.take()[0]!.requests, 2);
  assert.deepEqual(tally.take(), [], 'nothing new: nothing reported');
  c.requests++;
  assert.deepEqual(tally.take(), [{ identity: WEB, address: null, tls: true, requests: 1, connections: 0, wouldReject: 0 }]);
  // Once closed and idle, the caller is forgotten; a new connection starts a new entry.
  tally.closed(c);
  assert.deepEqual(tally.take(), []);
  const again = tally.connection(WEB, null, true);
  assert.notStrictEqual(again, c);
  assert.equal(tally.take()[0]!.connections, 1);
});

test('giveBack merges undelivered deltas with new counts', () => {
  const tally = new CallerTally();
  const c = tally.connection(WEB, null, true);
  c.requests += 5;
  const failed = tally.take();
  c.requests += 1;
  tally.giveBack(failed);
  tally.giveBack([{ identity: BILLING, address: null, tls: true, requests: 1, connections: 1, wouldReject: 0 }]);
  const reports = byKey(tally.take());
  assert.deepEqual(reports.get(WEB), { identity: WEB, address: null, tls: true, requests: 6, connections: 1, wouldReject: 0 });
  assert.equal(reports.get(BILLING)!.requests, 1, 'a caller no longer in the tally comes back');
});

test('bounded: past maxEntries new callers share the "other" entry', () => {
  const tally = new CallerTally({ maxEntries: 2 });
  tally.connection(null, '10.0.0.1', false);
  tally.connection(null, '10.0.0.2', false);
  const x = tally.connection(null, '10.0.0.3', false);
  const y = tally.connection(WEB, null, true);
  assert.strictEqual(x, y);
  x.requests += 4;
  const reports = byKey(tally.take());
  assert.equal(reports.size, 3);
  assert.deepEqual(reports.get('other'), { identity: null, address: 'other', tls: false, requests: 4, connections: 2, wouldReject: 0 });
  tally.giveBack([reports.get('other')!]);
  assert.equal(byKey(tally.take()).get('other')!.requests, 4, 'the aggregate is given back to the aggregate');
});
