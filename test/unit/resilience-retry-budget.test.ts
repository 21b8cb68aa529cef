import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RETRY_BUDGET, RetryBudget } from '../../src/proxy/resilience/retry-budget.js';
import { trafficPolicySchema } from '../../src/config/traffic-policy-schema.js';
import { manualClock } from './resilience-random.js';

const budget = (over: Record<string, unknown>) => trafficPolicySchema.parse({ retryBudget: over }).retryBudget!;

test("no config: Linkerd's defaults (20 %, 10 retries/s, over 10s)", () => {
  assert.deepEqual(DEFAULT_RETRY_BUDGET, { percent: 20, minRetriesPerSecond: 10, ttl: 10_000 });
  assert.deepEqual(trafficPolicySchema.parse({ retryBudget: {} }).retryBudget, DEFAULT_RETRY_BUDGET, 'the schema has the same defaults');
  const clock = manualClock();
  const b = new RetryBudget(undefined, clock.now);
  assert.equal(b.allowed, 100, '10/s × 10s, with no requests');
  for (let i = 0; i < 1000; i++) b.recordRequest();
  assert.equal(b.allowed, 200, '20 % of 1000');
});

test('the budget is exhausted at percent % of the requests, and refusals are counted', () => {
  const clock = manualClock(0);
  const b = new RetryBudget(budget({ percent: 20, minRetriesPerSecond: 0, ttl: '10s' }), clock.now);
  for (let i = 0; i < 100; i++) b.recordRequest();
  for (let i = 0; i < 20; i++) assert.ok(b.tryRetry(), `retry ${i + 1} of 20`);
  assert.equal(b.canRetry(), false);
  assert.equal(b.tryRetry(), false);
  assert.equal(b.exhausted, 1);
  assert.deepEqual(b.window, { requests: 100, retries: 20 });
  for (let i = 0; i < 5; i++) b.recordRequest();
  assert.ok(b.tryRetry(), '105 requests: 21 retries');
  assert.equal(b.tryRetry(), false);
});

test('a fraction of a retry is not a retry: 20 % of 4 requests allows none, of 5 allows one', () => {
  const b = new RetryBudget(budget({ percent: 20, minRetriesPerSecond: 0 }), manualClock().now);
  for (let i = 0; i < 4; i++) b.recordRequest();
  assert.equal(b.canRetry(), false);
  b.recordRequest();
  assert.ok(b.tryRetry());
  assert.equal(b.canRetry(), false);
});

test('minRetriesPerSecond × ttl retries are always allowed', () => {
  const b = new RetryBudget(budget({ percent: 0, minRetriesPerSecond: 2, ttl: '5s' }), manualClock().now);
  for (let i = 0; i < 10; i++) assert.ok(b.tryRetry());
  assert.equal(b.tryRetry(), false);
});

test('the window slides: old requests and retries fall out after ttl, in steps of ttl / 10', () => {
  const clock = manualClock(0);
  const b = new RetryBudget(budget({ percent: 20, minRetriesPerSecond: 0, ttl: '10s' }), clock.now);
  for (let i = 0; i < 100; i++) b.recordRequest();
  for (let i = 0; i < 20; i++) assert.ok(b.tryRetry());
  assert.equal(b.tryRetry(), false, 'exhausted at t=0');
  clock.set(5_000);
  for (let i = 0; i < 100; i++) b.recordRequest();
  for (let i = 0; i < 20; i++) assert.ok(b.tryRetry(), 'refilled by new requests');
  assert.equal(b.tryRetry(), false);
  clock.set(9_999);
  assert.deepEqual(b.window, { requests: 200, retries: 40 }, 'still inside the window');
  clock.set(10_000);
  assert.deepEqual(b.window, { requests: 100, retries: 20 }, 'the t=0 bucket fell out');
  assert.equal(b.tryRetry(), false, 'the t=5s retries still use the t=5s budget');
  clock.set(15_000);
  assert.deepEqual(b.window, { requests: 0, retries: 0 });
  clock.set(1_000_000);
  b.recordRequest();
  assert.deepEqual(b.window, { requests: 1, retries: 0 }, 'a long gap clears everything');
});
