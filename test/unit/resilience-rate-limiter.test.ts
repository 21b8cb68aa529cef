import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/proxy/resilience/rate-limiter.js';
import { trafficPolicySchema } from '../../src/config/traffic-policy-schema.js';
import { manualClock } from './resilience-random.js';

const limit = (over: Record<string, unknown>) => trafficPolicySchema.parse({ rateLimit: over }).rateLimit!;
const A = 'spiffe://example.org/ns/shop/svc/web';
const B = 'spiffe://example.org/ns/shop/svc/batch';

test('no config: no limit', () => {
  const rl = new RateLimiter(undefined);
  for (let i = 0; i < 10_000; i++) assert.ok(rl.take(A));
  assert.equal(rl.limited, 0);
});

test('a burst is allowed at once, then the rate; Retry-After says when', () => {
  const clock = manualClock(0);
  const rl = new RateLimiter(limit({ requestsPerSecond: 10, burst: 5 }), clock.now);
  for (let i = 0; i < 5; i++) assert.ok(rl.take(A), `burst ${i + 1}`);
  assert.equal(rl.take(A), false);
  assert.equal(rl.take(B), false, 'one bucket for every caller');
  assert.equal(rl.limited, 2);
  assert.equal(rl.retryAfterMs, 100, '10/s: one token in 100 ms');
  clock.advance(50);
  assert.equal(rl.take(A), false, 'half a token is not a token');
  assert.equal(rl.retryAfterMs, 50);
  clock.advance(50);
  assert.ok(rl.take(A), 'refilled continuously');
  assert.equal(rl.take(A), false);
  clock.advance(60_000);
  for (let i = 0; i < 5; i++) assert.ok(rl.take(A));
  assert.equal(rl.take(A), false, 'never more than the burst saved up');
});

test('over a long run the rate is respected (±1 token)', () => {
  const clock = manualClock(0);
  const rl = new RateLimiter(limit({ requestsPerSecond: 100 }), clock.now);
  let allowed = 0;
  for (let t = 0; t < 10_000; t++) {
    clock.set(t);
    for (let k = 0; k < 3; k++) if (rl.take(A)) allowed++;
  }
  // Burst 100 at the start, then 100/s for 10 s (the last millisecond's refill may be in flight).
  assert.ok(Math.abs(allowed - (100 + 100 * 9.999)) <= 1, `allowed ${allowed}`);
});

test('perCaller: each caller has its own bucket', () => {
  const clock = manualClock(0);
  const rl = new RateLimiter(limit({ requestsPerSecond: 1, burst: 2, perCaller: true }), clock.now);
  assert.ok(rl.take(A));
  assert.ok(rl.take(A));
  assert.equal(rl.take(A), false);
  assert.ok(rl.take(B), 'B is not slowed by A');
  assert.ok(rl.take(B));
  assert.equal(rl.take(B), false);
  assert.ok(rl.take('10.0.0.9'), 'a plaintext caller by address');
  assert.equal(rl.trackedCallers, 3);
});

test('perCaller: past maxCallers, the least recently used full bucket is replaced, else new callers share "other"', () => {
  const clock = manualClock(0);
  const rl = new RateLimiter(limit({ requestsPerSecond: 1, burst: 1, perCaller: true }), clock.now, { maxCallers: 2 });
  assert.ok(rl.take('a'));
  assert.ok(rl.take('b'));
  assert.ok(rl.take('c'), 'a and b are empty: c uses the other bucket');
  assert.equal(rl.take('d'), false, 'd shares it with c');
  assert.equal(rl.trackedCallers, 2);
  clock.advance(1_000); // a and b have refilled; touch a so b is the least recently used
  assert.ok(rl.take('a'));
  assert.ok(rl.take('e'), 'e takes the place of b (full, so nothing is lost)');
  assert.equal(rl.take('e'), false, 'e has a bucket of its own now');
  assert.equal(rl.trackedCallers, 2);
  assert.equal(rl.take('a'), false, 'a kept its bucket (empty since it was just used)');
  assert.ok(rl.take('b'), 'b comes back through the other bucket, refilled by now');
});

test('burst defaults to requestsPerSecond, and to at least 1', () => {
  assert.equal(limit({ requestsPerSecond: 100 }).burst, 100);
  assert.equal(limit({ requestsPerSecond: 0.5 }).burst, 1);
  const clock = manualClock(0);
  const rl = new RateLimiter(limit({ requestsPerSecond: 0.5 }), clock.now);
  assert.ok(rl.take(A));
  assert.equal(rl.take(A), false);
  assert.equal(rl.retryAfterMs, 2000);
  clock.advance(2_000);
  assert.ok(rl.take(A));
});
