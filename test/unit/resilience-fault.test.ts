import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultInjector } from '../../src/proxy/resilience/fault-injector.js';
import { trafficPolicySchema } from '../../src/config/traffic-policy-schema.js';
import { assertBinomial, seeded } from './resilience-random.js';

const faults = (over: Record<string, unknown>) => trafficPolicySchema.parse({ faultInjection: over }).faultInjection!;
const noHeaders = () => undefined;

test('no config: never a fault', () => {
  const fi = new FaultInjector(undefined);
  for (let i = 0; i < 100; i++) assert.equal(fi.decide(noHeaders), null);
});

test('delay and abort apply at their percentages, independently (5σ bound, seeded)', () => {
  const fi = new FaultInjector(faults({ delay: { fixed: '100ms', percent: 20 }, abort: { status: 503, percent: 10 } }), seeded(61));
  const n = 100_000;
  let delayed = 0;
  let aborted = 0;
  let both = 0;
  for (let i = 0; i < n; i++) {
    const d = fi.decide(noHeaders);
    if (d === null) continue;
    if (d.delayMs > 0) {
      assert.equal(d.delayMs, 100);
      delayed++;
    }
    if (d.abortStatus > 0) {
      assert.equal(d.abortStatus, 503);
      assert.equal(d.abortGrpcStatus, 0, 'no grpcStatus configured');
      aborted++;
    }
    if (d.delayMs > 0 && d.abortStatus > 0) both++;
    assert.ok(d.delayMs > 0 || d.abortStatus > 0, 'a decision always carries a fault');
  }
  assertBinomial(delayed, n, 0.2, 'delayed');
  assertBinomial(aborted, n, 0.1, 'aborted');
  assertBinomial(both, n, 0.02, 'delayed and aborted (independent draws)');
  assert.equal(fi.delays, delayed);
  assert.equal(fi.aborts, aborted);
});

test('percent defaults to 100; 0 never applies; grpcStatus is passed on', () => {
  const always = new FaultInjector(faults({ abort: { status: 503, grpcStatus: 14 } }), seeded(62));
  for (let i = 0; i < 1000; i++) assert.deepEqual(always.decide(noHeaders), { delayMs: 0, abortStatus: 503, abortGrpcStatus: 14 });
  const never = new FaultInjector(faults({ delay: { fixed: '1s', percent: 0 } }), seeded(63));
  for (let i = 0; i < 1000; i++) assert.equal(never.decide(noHeaders), null);
  const delay = new FaultInjector(faults({ delay: { fixed: '1.5s' } }), seeded(64));
  assert.deepEqual(delay.decide(noHeaders), { delayMs: 1500, abortStatus: 0, abortGrpcStatus: 0 });
});

test('with headers, only requests carrying all of them exactly are faulted (and no draw is spent on the others)', () => {
  let draws = 0;
  const random = () => {
    draws++;
    return 0;
  };
  const fi = new FaultInjector(faults({ abort: { status: 500 }, headers: [{ name: 'X-Chaos', value: '1' }, { name: 'x-tenant', value: 'test' }] }), random);
  const request = (h: Record<string, string>) => (name: string) => h[name];
  assert.equal(fi.decide(request({})), null);
  assert.equal(fi.decide(request({ 'x-chaos': '1' })), null, 'one header of two');
  assert.equal(fi.decide(request({ 'x-chaos': '2', 'x-tenant': 'test' })), null, 'exact values');
  assert.equal(draws, 0);
  assert.deepEqual(fi.decide(request({ 'x-chaos': '1', 'x-tenant': 'test' })), { delayMs: 0, abortStatus: 500, abortGrpcStatus: 0 });
  assert.equal(draws, 1, 'one draw: only abort is configured');
});

test('each fault returns its own decision object', () => {
  const fi = new FaultInjector(faults({ abort: { status: 503 } }));
  const a = fi.decide(noHeaders);
  const b = fi.decide(noHeaders);
  assert.notStrictEqual(a, b);
});
