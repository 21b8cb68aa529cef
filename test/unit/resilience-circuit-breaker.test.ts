import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker } from '../../src/proxy/resilience/circuit-breaker.js';
import { trafficPolicySchema } from '../../src/config/traffic-policy-schema.js';

test('without limits everything is allowed, and still counted', () => {
  const cb = new CircuitBreaker(undefined);
  assert.equal(cb.limited, false);
  for (let i = 0; i < 10_000; i++) {
    assert.ok(cb.tryRequest());
    assert.ok(cb.tryRetry());
    assert.ok(cb.tryConnection());
    assert.ok(cb.tryPending());
  }
  assert.deepEqual([cb.requests, cb.retries, cb.connections, cb.pending], [10_000, 10_000, 10_000, 10_000]);
  assert.deepEqual({ ...cb.overflows }, { requests: 0, retries: 0, connections: 0, pending: 0 });
});

test('each limit refuses at its maximum, counts the overflow, and frees a slot when done', () => {
  const cb = new CircuitBreaker({ maxConnections: 2, maxPendingRequests: 1, maxRequests: 3, maxRetries: 1 });
  assert.equal(cb.limited, true);
  const kinds = [
    { name: 'requests', max: 3, take: () => cb.tryRequest(), give: () => cb.requestDone(), now: () => cb.requests },
    { name: 'retries', max: 1, take: () => cb.tryRetry(), give: () => cb.retryDone(), now: () => cb.retries },
    { name: 'connections', max: 2, take: () => cb.tryConnection(), give: () => cb.connectionClosed(), now: () => cb.connections },
    { name: 'pending', max: 1, take: () => cb.tryPending(), give: () => cb.pendingDone(), now: () => cb.pending },
  ] as const;
  for (const k of kinds) {
    for (let i = 0; i < k.max; i++) assert.ok(k.take(), `${k.name} ${i + 1} of ${k.max}`);
    assert.equal(k.take(), false, `${k.name}: one over the limit`);
    assert.equal(k.take(), false);
    assert.equal(k.now(), k.max, `${k.name}: a refusal takes no slot`);
    assert.equal(cb.overflows[k.name], 2);
    k.give();
    assert.ok(k.take(), `${k.name}: a freed slot is usable`);
  }
  assert.deepEqual({ ...cb.overflows }, { requests: 2, retries: 2, connections: 2, pending: 2 });
});

test('the limits are independent of each other', () => {
  const cb = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 });
  assert.ok(cb.tryRequest());
  assert.equal(cb.tryRequest(), false);
  assert.ok(cb.tryRetry(), 'requests full, retries not');
  assert.ok(cb.tryConnection());
  assert.ok(cb.tryPending());
});

test('done never goes below zero (a double release does not raise the limit)', () => {
  const cb = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 });
  cb.requestDone();
  cb.retryDone();
  cb.connectionClosed();
  cb.pendingDone();
  assert.deepEqual([cb.requests, cb.retries, cb.connections, cb.pending], [0, 0, 0, 0]);
  assert.ok(cb.tryRequest());
  assert.equal(cb.tryRequest(), false);
});

test("an empty connectionPool takes Envoy's defaults: 1024 / 1024 / 1024 / 3 retries", () => {
  const policy = trafficPolicySchema.parse({ connectionPool: {} });
  const cb = new CircuitBreaker(policy.connectionPool);
  for (let i = 0; i < 3; i++) assert.ok(cb.tryRetry());
  assert.equal(cb.tryRetry(), false);
  for (let i = 0; i < 1024; i++) assert.ok(cb.tryRequest());
  assert.equal(cb.tryRequest(), false);
  const zero = new CircuitBreaker(trafficPolicySchema.parse({ connectionPool: { maxRetries: 0, maxPendingRequests: 0 } }).connectionPool);
  assert.equal(zero.tryRetry(), false, 'maxRetries 0: no retries');
  assert.equal(zero.tryPending(), false, 'maxPendingRequests 0: nothing waits');
});
