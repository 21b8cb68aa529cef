import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutlierDetector } from '../../src/proxy/resilience/outlier-detector.js';
import { trafficPolicySchema, type OutlierDetectionConfig } from '../../src/config/traffic-policy-schema.js';
import type { LbEndpoint } from '../../src/proxy/lb/types.js';
import { createPicker } from '../../src/proxy/lb/picker.js';
import { manualClock, seeded } from './resilience-random.js';

const endpoints = (n: number): LbEndpoint[] => Array.from({ length: n }, () => ({ active: 0, weight: 1, ejected: false }));
const config = (over: Record<string, unknown> = {}): OutlierDetectionConfig =>
  trafficPolicySchema.parse({ outlierDetection: { maxEjectionPercent: 100, ...over } }).outlierDetection!;

test('consecutive5xx failures in a row eject; a success in between resets the count', () => {
  const clock = manualClock();
  const list = endpoints(4);
  const od = new OutlierDetector(config(), list, clock.now);
  const ejected: number[] = [];
  od.onEject = (i) => ejected.push(i);
  for (let k = 0; k < 4; k++) od.failure(1, '5xx');
  od.success(1);
  for (let k = 0; k < 4; k++) od.failure(1, '5xx');
  assert.equal(list[1]!.ejected, false, '4 + 4 with a success between: not 5 in a row');
  od.failure(1, '5xx');
  assert.equal(list[1]!.ejected, true);
  assert.deepEqual(ejected, [1]);
  assert.equal(od.ejections, 1);
  assert.equal(od.ejected, 1);
  assert.equal(od.returnsAt(1), 1_000 + 30_000, 'the first ejection lasts baseEjectionTime (default 30s)');
  assert.equal(od.returnsAt(0), null);
});

test("gateway errors and connect failures count toward both thresholds; a plain 5xx only toward consecutive5xx", () => {
  const list = endpoints(3);
  const od = new OutlierDetector(config({ consecutive5xx: 0, consecutiveGatewayErrors: 3 }), list, manualClock().now);
  od.failure(0, 'gateway');
  od.failure(0, 'connect');
  od.failure(0, '5xx');
  od.failure(0, 'gateway');
  od.failure(0, 'gateway');
  assert.equal(list[0]!.ejected, false, 'a 500 breaks a run of gateway errors');
  od.failure(0, 'connect');
  assert.equal(list[0]!.ejected, true, 'gateway, gateway, connect: 3 in a row');

  const list2 = endpoints(3);
  const od2 = new OutlierDetector(config({ consecutive5xx: 3 }), list2, manualClock().now);
  od2.failure(2, 'gateway');
  od2.failure(2, '5xx');
  od2.failure(2, 'connect');
  assert.equal(list2[2]!.ejected, true, 'every kind counts toward consecutive5xx');
});

test('an ejected endpoint returns when its time has passed (lazily, at tick)', () => {
  const clock = manualClock(0);
  const list = endpoints(3);
  const od = new OutlierDetector(config({ consecutive5xx: 1 }), list, clock.now);
  const returned: number[] = [];
  od.onReturn = (i) => returned.push(i);
  od.failure(0, 'connect');
  clock.advance(10_000);
  od.failure(2, 'connect');
  clock.set(29_999);
  od.tick();
  assert.equal(list[0]!.ejected, true);
  od.tick(30_000);
  assert.equal(list[0]!.ejected, false, 'back after 30s');
  assert.equal(list[2]!.ejected, true, 'the other is ejected until 40s');
  assert.deepEqual(returned, [0]);
  od.tick(39_999);
  assert.equal(list[2]!.ejected, true);
  od.tick(40_000);
  assert.equal(list[2]!.ejected, false);
  assert.equal(od.ejected, 0);
  assert.deepEqual(returned, [0, 2]);
});

test('tick is cheap until a return is due: it does not even read the clock with nothing ejected', () => {
  let reads = 0;
  const list = endpoints(100);
  const od = new OutlierDetector(config({ consecutive5xx: 1 }), list, () => {
    reads++;
    return 0;
  });
  reads = 0;
  for (let k = 0; k < 1000; k++) od.tick();
  assert.equal(reads, 0);
  od.failure(5, '5xx');
  reads = 0;
  for (let k = 0; k < 1000; k++) od.tick(1);
  assert.equal(reads, 0, 'with an explicit time, no clock read either');
  assert.equal(list[5]!.ejected, true);
});

test('repeated ejections last longer (n × base), capped at maxEjectionTime', () => {
  const clock = manualClock(0);
  const list = endpoints(2);
  const od = new OutlierDetector(config({ consecutive5xx: 1, baseEjectionTime: '10s', maxEjectionTime: '35s' }), list, clock.now);
  const durations: number[] = [];
  for (let k = 0; k < 5; k++) {
    od.failure(0, '5xx');
    const back = od.returnsAt(0)!;
    durations.push(back - clock.now());
    clock.set(back);
    od.tick();
    assert.equal(list[0]!.ejected, false);
  }
  assert.deepEqual(durations, [10_000, 20_000, 30_000, 35_000, 35_000]);
});

test('the ejection level decays by one per baseEjectionTime in service', () => {
  const clock = manualClock(0);
  const list = endpoints(2);
  const od = new OutlierDetector(config({ consecutive5xx: 1, baseEjectionTime: '10s', maxEjectionTime: '100s' }), list, clock.now);
  const ejectFor = (): number => {
    od.failure(0, '5xx');
    const d = od.returnsAt(0)! - clock.now();
    clock.advance(d);
    od.tick();
    return d;
  };
  assert.deepEqual([ejectFor(), ejectFor(), ejectFor()], [10_000, 20_000, 30_000], 'level 3');
  clock.advance(19_999); // one full base in service: level 3 → 2, then +1
  assert.equal(ejectFor(), 30_000);
  clock.advance(25_000); // two full bases: 3 → 1, then +1
  assert.equal(ejectFor(), 20_000);
  clock.advance(10 * 10_000); // long healthy: back to the start
  assert.equal(ejectFor(), 10_000);
});

test('maxEjectionPercent: counting the new one, at most that share is ejected; a refused ejection happens once there is room', () => {
  const clock = manualClock(0);
  const list = endpoints(10);
  const od = new OutlierDetector(config({ consecutive5xx: 2, maxEjectionPercent: 20 }), list, clock.now);
  for (const i of [0, 1, 2]) {
    od.failure(i, '5xx');
    od.failure(i, '5xx');
  }
  assert.deepEqual(list.map((e) => e.ejected).slice(0, 3), [true, true, false], '20 % of 10 = 2');
  assert.equal(od.ejectionsRefused, 1);
  clock.set(30_000);
  od.failure(2, '5xx');
  assert.equal(list[2]!.ejected, true, 'the others returned at 30s (failure ticks first); the third is still at its threshold');
  assert.equal(list[0]!.ejected, false);
});

test("maxEjectionPercent: one endpoint may always be ejected when above 0 (Envoy's always_eject_one_host); 0 ejects none", () => {
  const list = endpoints(3);
  const od = new OutlierDetector(config({ consecutive5xx: 1, maxEjectionPercent: 10 }), list, manualClock().now);
  od.failure(0, '5xx');
  od.failure(1, '5xx');
  assert.deepEqual(list.map((e) => e.ejected), [true, false, false], '10 % of 3 floors to 0, but one may go');
  const none = endpoints(3);
  const off = new OutlierDetector(config({ consecutive5xx: 1, maxEjectionPercent: 0 }), none, manualClock().now);
  off.failure(0, '5xx');
  assert.equal(none[0]!.ejected, false);
  assert.equal(off.ejectionsRefused, 1);
  const half = endpoints(5);
  const od50 = new OutlierDetector(config({ consecutive5xx: 1, maxEjectionPercent: 50 }), half, manualClock().now);
  for (let i = 0; i < 5; i++) od50.failure(i, '5xx');
  assert.equal(half.filter((e) => e.ejected).length, 2, '50 % of 5 = 2.5: 2');
});

test('without a config nothing is ejected; outcomes for an ejected endpoint are ignored; the constructor clears stale flags', () => {
  const list = endpoints(3);
  list[1]!.ejected = true;
  const off = new OutlierDetector(undefined, list);
  assert.equal(list[1]!.ejected, false, 'the detector owns the flag');
  for (let k = 0; k < 100; k++) off.failure(0, 'connect');
  off.success(0);
  off.tick();
  assert.equal(list[0]!.ejected, false);
  assert.equal(off.ejections, 0);

  const clock = manualClock(0);
  const od = new OutlierDetector(config({ consecutive5xx: 2 }), list, clock.now);
  od.failure(0, '5xx');
  od.failure(0, '5xx');
  for (let k = 0; k < 10; k++) od.failure(0, '5xx'); // panic-mode traffic while ejected
  assert.equal(od.ejections, 1);
  clock.set(30_000);
  od.tick();
  od.failure(0, '5xx');
  assert.equal(list[0]!.ejected, false, 'the count starts over on return');
});

test('with a picker: an ejected endpoint gets no traffic until it returns', () => {
  const clock = manualClock(0);
  const list = endpoints(4);
  const od = new OutlierDetector(config({ consecutive5xx: 3 }), list, clock.now);
  const picker = createPicker({ policy: 'RoundRobin' }, seeded(1));
  const seen = [0, 0, 0, 0];
  for (let t = 0; t < 60_000; t += 10) {
    clock.set(t);
    od.tick(t);
    const i = picker.pick(list, null);
    seen[i]!++;
    if (i === 3 && t < 1000) od.failure(i, '5xx');
    else od.success(i);
  }
  // Endpoint 3 fails 3 times (by t ≈ 120 ms), is out for 30 s, then answers well.
  assert.ok(seen[3]! < seen[0]! * 0.6, `ejected for half the run: ${seen.join(',')}`);
  assert.ok(seen[3]! > seen[0]! * 0.3, `back in service for the other half: ${seen.join(",")}`);
  assert.equal(od.ejections, 1);
});
