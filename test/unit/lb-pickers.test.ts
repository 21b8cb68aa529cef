import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPicker } from '../../src/proxy/lb/picker.js';
import type { LbEndpoint, Picker } from '../../src/proxy/lb/types.js';
import { RoundRobin } from '../../src/proxy/lb/round-robin.js';
import { LeastRequestPicker } from '../../src/proxy/lb/least-request.js';
import { WeightedRoundRobinPicker } from '../../src/proxy/lb/weighted-round-robin.js';
import { ConsistentHashPicker, hashString } from '../../src/proxy/lb/consistent-hash.js';
import { RandomPicker } from '../../src/proxy/lb/random.js';
import { LB_POLICIES, type LbPolicy } from '../../src/config/traffic-policy-schema.js';
import { assertBinomial, seeded } from './resilience-random.js';

const endpoints = (n: number, weights?: number[], keys = false): LbEndpoint[] =>
  Array.from({ length: n }, (_, i) => ({ active: 0, weight: weights?.[i] ?? 1, ejected: false, ...(keys ? { key: `10.0.0.${i + 1}:8443` } : {}) }));

const config = (policy: LbPolicy) => (policy === 'ConsistentHash' ? { policy, consistentHash: { header: 'x-user-id' } } : { policy });

/** The hash key for pick k: varied strings for ConsistentHash (null now and then), ignored by the others. */
const keyFor = (k: number): string | null => (k % 10 === 9 ? null : `user-${k}`);

function counts(picker: Picker, list: readonly LbEndpoint[], picks: number, key: (k: number) => string | null = keyFor): number[] {
  const seen = new Array<number>(list.length).fill(0);
  for (let k = 0; k < picks; k++) {
    const i = picker.pick(list, key(k));
    assert.ok(i >= 0 && i < list.length, `index ${i} out of range`);
    seen[i]!++;
  }
  return seen;
}

// The contract every picker keeps (Picker in src/proxy/lb/types.ts).
for (const policy of LB_POLICIES) {
  const make = () => createPicker(config(policy), seeded(7));

  test(`${policy}: empty list → -1; one endpoint → 0, ejected or not`, () => {
    const picker = make();
    assert.equal(picker.pick([], 'k'), -1);
    assert.equal(picker.pick([], null), -1);
    const one = endpoints(1);
    const p1 = make();
    for (let k = 0; k < 20; k++) assert.equal(p1.pick(one, keyFor(k)), 0);
    one[0]!.ejected = true;
    for (let k = 0; k < 20; k++) assert.equal(p1.pick(one, keyFor(k)), 0, 'panic mode: the only endpoint');
  });

  test(`${policy}: covers every endpoint over many picks`, () => {
    const list = endpoints(10);
    const seen = counts(make(), list, 5000);
    assert.ok(seen.every((c) => c > 0), `every endpoint picked: ${seen.join(',')}`);
  });

  test(`${policy}: never an ejected endpoint while one is not ejected, and covers the others`, () => {
    const list = endpoints(8, [1, 2, 1, 3, 1, 1, 2, 1]);
    for (const i of [1, 3, 4, 6]) list[i]!.ejected = true;
    const picker = make();
    const seen = counts(picker, list, 8000);
    for (const i of [1, 3, 4, 6]) assert.equal(seen[i], 0, `ejected endpoint ${i} picked`);
    for (const i of [0, 2, 5, 7]) assert.ok(seen[i]! > 0, `endpoint ${i} never picked`);
    // Only one left: always that one.
    for (const i of [0, 2, 5]) list[i]!.ejected = true;
    const only = counts(picker, list, 500);
    assert.equal(only[7], 500);
  });

  test(`${policy}: every endpoint ejected → panic mode picks among all`, () => {
    const list = endpoints(5);
    for (const e of list) e.ejected = true;
    const seen = counts(make(), list, 5000);
    assert.ok(seen.every((c) => c > 0), `panic mode covers all: ${seen.join(',')}`);
  });

  test(`${policy}: ejection changes take effect at the next pick (same list)`, () => {
    const list = endpoints(4);
    const picker = make();
    counts(picker, list, 100);
    list[2]!.ejected = true;
    assert.equal(counts(picker, list, 2000)[2], 0);
    list[2]!.ejected = false;
    assert.ok(counts(picker, list, 2000)[2]! > 0, 'back in service');
  });
}

test('createPicker: LeastRequest by default; one class per policy', () => {
  assert.ok(createPicker(undefined) instanceof LeastRequestPicker);
  assert.ok(createPicker({ policy: 'LeastRequest' }) instanceof LeastRequestPicker);
  assert.ok(createPicker({ policy: 'RoundRobin' }) instanceof RoundRobin);
  assert.ok(createPicker({ policy: 'WeightedRoundRobin' }) instanceof WeightedRoundRobinPicker);
  assert.ok(createPicker({ policy: 'Random' }) instanceof RandomPicker);
  assert.ok(createPicker({ policy: 'ConsistentHash', consistentHash: { header: 'x-user-id' } }) instanceof ConsistentHashPicker);
});

test('RoundRobin keeps next() for the cluster code, and picks in turn skipping ejected endpoints', () => {
  const rr = new RoundRobin(3);
  assert.deepEqual([rr.next(), rr.next(), rr.next(), rr.next()], [0, 1, 2, 0]);
  const list = endpoints(4);
  const picker = new RoundRobin();
  assert.deepEqual(Array.from({ length: 6 }, () => picker.pick(list, null)), [0, 1, 2, 3, 0, 1]);
  list[3]!.ejected = true;
  assert.deepEqual(Array.from({ length: 6 }, () => picker.pick(list, null)), [2, 0, 1, 2, 0, 1]);
  const started = new RoundRobin(0, 6);
  assert.equal(started.pick(endpoints(4), null), 2, 'the start offset wraps');
});

test('RoundRobin (createPicker) spreads exactly evenly, from a random start', () => {
  const list = endpoints(5);
  const seen = counts(createPicker({ policy: 'RoundRobin' }, seeded(3)), list, 5000);
  assert.deepEqual(seen, [1000, 1000, 1000, 1000, 1000]);
});

test('WeightedRoundRobin: smooth (nginx) order and exact shares', () => {
  const list = endpoints(3, [5, 1, 1]);
  const picker = new WeightedRoundRobinPicker(() => 0);
  const names = Array.from({ length: 14 }, () => 'abc'[picker.pick(list, null)]).join('');
  assert.equal(names, 'aabacaa'.repeat(2), 'interleaved, not aaaaabc');
  const weighted = endpoints(4, [1, 2, 3, 4]);
  const seen = counts(createPicker({ policy: 'WeightedRoundRobin' }, seeded(11)), weighted, 10 * 1000);
  assert.deepEqual(seen, [1000, 2000, 3000, 4000]);
  // Over the non-ejected: shares among the rest stay exact.
  weighted[3]!.ejected = true;
  const rest = counts(createPicker({ policy: 'WeightedRoundRobin' }, seeded(12)), weighted, 6 * 1000);
  assert.deepEqual(rest, [1000, 2000, 3000, 0]);
});

test('Random: uniform with equal weights, proportional to weight otherwise (5σ bound, seeded)', () => {
  const n = 100_000;
  const seen = counts(createPicker({ policy: 'Random' }, seeded(21)), endpoints(4), n);
  seen.forEach((c, i) => assertBinomial(c, n, 1 / 4, `endpoint ${i}`));
  const weights = [1, 2, 3, 4];
  const w = counts(createPicker({ policy: 'Random' }, seeded(22)), endpoints(4, weights), n);
  w.forEach((c, i) => assertBinomial(c, n, weights[i]! / 10, `weight ${weights[i]}`));
  // Ejected weight is redistributed in proportion to the remaining weights.
  const list = endpoints(4, weights);
  list[3]!.ejected = true;
  list[1]!.ejected = true;
  const r = counts(createPicker({ policy: 'Random' }, seeded(23)), list, n);
  assertBinomial(r[0]!, n, 1 / 4, 'weight 1 of 1+3');
  assertBinomial(r[2]!, n, 3 / 4, 'weight 3 of 1+3');
});

test('LeastRequest: fewer in flight wins; idle endpoints share evenly (5σ bound); ties follow weight', () => {
  const list = endpoints(2);
  list[0]!.active = 5;
  list[1]!.active = 2;
  const picker = createPicker(undefined, seeded(31));
  for (let k = 0; k < 50; k++) assert.equal(picker.pick(list, null), 1, 'two endpoints: both are always the candidates');
  // active / weight: 5/1 vs 8/2 → the weight-2 endpoint is less loaded.
  const weighted = endpoints(2, [1, 2]);
  weighted[0]!.active = 5;
  weighted[1]!.active = 8;
  for (let k = 0; k < 50; k++) assert.equal(picker.pick(weighted, null), 1);
  weighted[1]!.active = 12;
  for (let k = 0; k < 50; k++) assert.equal(picker.pick(weighted, null), 0);
  // A tie (5/1 vs 10/2) is broken in proportion to weight: 1/3 vs 2/3.
  weighted[1]!.active = 10;
  const n = 30_000;
  const tie = counts(picker, weighted, n);
  assertBinomial(tie[1]!, n, 2 / 3, 'tie broken by weight');
  // Idle: every pair is a tie, so each endpoint is picked about equally.
  const idle = counts(createPicker(undefined, seeded(32)), endpoints(5), 100_000);
  idle.forEach((c, i) => assertBinomial(c, 100_000, 1 / 5, `idle endpoint ${i}`));
});

test('LeastRequest: the busiest of three endpoints is never picked (power of two choices)', () => {
  const list = endpoints(3);
  list[0]!.active = 9;
  list[1]!.active = 1;
  list[2]!.active = 2;
  const seen = counts(createPicker(undefined, seeded(33)), list, 3000);
  assert.equal(seen[0], 0, 'whichever pair is drawn, the other candidate has fewer in flight');
  // Endpoint 1 wins every pair it is in (2 of 3 pairs); endpoint 2 wins the pair {0, 2}.
  assertBinomial(seen[1]!, 3000, 2 / 3, 'least loaded');
});

/**
 * A discrete-time simulation: each tick `rate` requests arrive; endpoint 0 takes `slow`
 * ticks per request, the others 1 tick. Returns the share sent to the slow endpoint and the
 * mean latency in ticks.
 */
function simulate(picker: Picker, { n = 4, slow = 10, rate = 8, ticks = 5000 } = {}): { slowShare: number; meanLatency: number } {
  const list = endpoints(n);
  const horizon = slow + 1;
  const done: number[][] = Array.from({ length: horizon }, () => []);
  let sent = 0;
  let toSlow = 0;
  let latency = 0;
  for (let t = 0; t < ticks; t++) {
    for (const i of done[t % horizon]!) list[i]!.active--;
    done[t % horizon] = [];
    for (let r = 0; r < rate; r++) {
      const i = picker.pick(list, null);
      list[i]!.active++;
      const service = i === 0 ? slow : 1;
      done[(t + service) % horizon]!.push(i);
      sent++;
      latency += service;
      if (i === 0) toSlow++;
    }
  }
  return { slowShare: toSlow / sent, meanLatency: latency / sent };
}

test('a slow endpoint: least request (P2C) sends it far less than round robin does', () => {
  const rr = simulate(createPicker({ policy: 'RoundRobin' }, seeded(41)));
  const p2c = simulate(createPicker({ policy: 'LeastRequest' }, seeded(42)));
  assert.equal(rr.slowShare, 0.25, 'round robin: one in four, however slow');
  assert.ok(p2c.slowShare < 0.1, `P2C sends the slow endpoint ${(p2c.slowShare * 100).toFixed(1)} %`);
  assert.ok(p2c.meanLatency < rr.meanLatency * 0.6, `mean latency P2C ${p2c.meanLatency.toFixed(2)} vs RR ${rr.meanLatency.toFixed(2)} ticks`);
});

test('LeastRequest under load: in-flight requests settle in proportion to weight', () => {
  const list = endpoints(2, [1, 3]);
  const picker = createPicker(undefined, seeded(43));
  const horizon = 6;
  const done: number[][] = Array.from({ length: horizon }, () => []);
  const seen = [0, 0];
  for (let t = 0; t < 4000; t++) {
    for (const i of done[t % horizon]!) list[i]!.active--;
    done[t % horizon] = [];
    for (let r = 0; r < 8; r++) {
      const i = picker.pick(list, null);
      list[i]!.active++;
      seen[i]!++;
      done[(t + 5) % horizon]!.push(i);
    }
  }
  const share = seen[1]! / (seen[0]! + seen[1]!);
  assert.ok(share > 0.7 && share < 0.8, `weight 3 of 4 gets ${(share * 100).toFixed(1)} % (expected about 75 %)`);
});

test('ConsistentHash: a key always maps to the same endpoint; keys spread within ±30 % of a fair share', () => {
  const list = endpoints(4, undefined, true);
  const picker = createPicker(config('ConsistentHash'), seeded(51));
  for (let k = 0; k < 200; k++) {
    const first = picker.pick(list, `user-${k}`);
    for (let r = 0; r < 3; r++) assert.equal(picker.pick(list, `user-${k}`), first);
  }
  // 100 points per endpoint: each endpoint's share of the ring deviates by about 1/sqrt(100) = 10 %.
  const keys = 40_000;
  const seen = counts(picker, list, keys, (k) => `user-${k}`);
  for (const c of seen) assert.ok(Math.abs(c - keys / 4) < 0.3 * (keys / 4), `shares ${seen.join(',')}`);
  // Another picker on an equal list maps keys the same way (the ring depends only on the endpoints).
  const again = new ConsistentHashPicker(seeded(52));
  for (let k = 0; k < 200; k++) assert.equal(again.pick(endpoints(4, undefined, true), `user-${k}`), picker.pick(list, `user-${k}`));
});

test('ConsistentHash: weight 3 gets about three times the keys of weight 1', () => {
  const list = endpoints(2, [1, 3], true);
  const keys = 40_000;
  const seen = counts(new ConsistentHashPicker(), list, keys, (k) => `session-${k}`);
  const share = seen[1]! / keys;
  assert.ok(share > 0.65 && share < 0.85, `weight 3 of 4 gets ${(share * 100).toFixed(1)} %`);
});

test('ConsistentHash: only the keys of an ejected or removed endpoint move', () => {
  const list = endpoints(5, undefined, true);
  const picker = new ConsistentHashPicker();
  const keys = Array.from({ length: 5000 }, (_, k) => `user-${k}`);
  const before = keys.map((k) => picker.pick(list, k));
  list[2]!.ejected = true;
  const ejected = keys.map((k) => picker.pick(list, k));
  keys.forEach((_, j) => {
    if (before[j] !== 2) assert.equal(ejected[j], before[j], 'a key of a healthy endpoint stays');
    else assert.notEqual(ejected[j], 2);
  });
  // Removing endpoint 2 from the list (a new list: other indexes shift) moves the same keys only.
  const smaller = list.filter((_, i) => i !== 2).map((e) => ({ ...e, ejected: false }));
  const after = keys.map((k) => picker.pick(smaller, k));
  const address = (list2: readonly LbEndpoint[], i: number) => list2[i]!.key;
  keys.forEach((_, j) => {
    if (before[j] !== 2) assert.equal(address(smaller, after[j]!), address(list, before[j]!), 'stable keys keep their endpoint');
  });
});

test('ConsistentHash: requests without the header (null key) spread over the ring', () => {
  const n = 40_000;
  const seen = counts(new ConsistentHashPicker(seeded(53)), endpoints(4, undefined, true), n, () => null);
  for (const c of seen) assert.ok(Math.abs(c - n / 4) < 0.3 * (n / 4), `shares ${seen.join(',')}`);
});

test('hashString is pinned: a key maps the same way in every sidecar and every release', () => {
  assert.equal(hashString(''), 2872998923);
  assert.equal(hashString('user-1'), 2005895916);
  assert.equal(hashString('x-user-42'), 4254662878);
});
