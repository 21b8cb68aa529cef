import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inboundTrafficPolicySchema, trafficPolicySchema, upstreamTrafficPolicySchema } from '../../src/config/traffic-policy-schema.js';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/problems.js';

const DOCS = 'docs/resilience.md';
const validate = (raw: unknown) => validateConfig(trafficPolicySchema, raw, DOCS);

function problemsOf(raw: unknown): ConfigError['problems'] {
  try {
    validate(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail(`expected ${JSON.stringify(raw)} to be rejected`);
}

/** The one problem at `path`, whose message must match `message`. */
function assertProblem(raw: unknown, path: string, message: RegExp): void {
  const problems = problemsOf(raw);
  const found = problems.filter((p) => p.path === path);
  assert.equal(found.length, 1, `one problem at ${path}: ${JSON.stringify(problems)}`);
  assert.match(found[0]!.message, message);
}

test('an empty policy is valid: every section absent', () => {
  assert.deepEqual(validate({}), {});
});

test('each section, given empty, gets the documented defaults', () => {
  const p = validate({ loadBalancer: {}, connectionPool: {}, outlierDetection: {}, retryBudget: {} });
  assert.deepEqual(p.loadBalancer, { policy: 'LeastRequest' });
  assert.deepEqual(p.connectionPool, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
  assert.deepEqual(p.outlierDetection, { consecutive5xx: 5, consecutiveGatewayErrors: 0, baseEjectionTime: 30_000, maxEjectionTime: 300_000, maxEjectionPercent: 10 });
  assert.deepEqual(p.retryBudget, { percent: 20, minRetriesPerSecond: 10, ttl: 10_000 });
  assert.deepEqual(validate({ rateLimit: { requestsPerSecond: 100 } }).rateLimit, { requestsPerSecond: 100, burst: 100, perCaller: false });
  assert.deepEqual(validate({ faultInjection: { delay: { fixed: '100ms' } } }).faultInjection, { delay: { fixed: 100, percent: 100 } });
});

test('the full example from docs/resilience.md is valid; durations in ms, header names in lower case', () => {
  const p = validate({
    loadBalancer: { policy: 'ConsistentHash', consistentHash: { header: 'X-User-Id' } },
    connectionPool: { maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, maxRetries: 5 },
    outlierDetection: { consecutive5xx: 5, consecutiveGatewayErrors: 3, baseEjectionTime: '30s', maxEjectionTime: '5m', maxEjectionPercent: 50 },
    retryBudget: { percent: 12.5, minRetriesPerSecond: 5, ttl: '10s' },
    rateLimit: { requestsPerSecond: 100, burst: 200, perCaller: true },
    faultInjection: { delay: { fixed: '100ms', percent: 20 }, abort: { status: 503, grpcStatus: 14, percent: 0.5 }, headers: [{ name: 'X-Chaos', value: '1' }] },
  });
  assert.deepEqual(p.loadBalancer, { policy: 'ConsistentHash', consistentHash: { header: 'x-user-id' } });
  assert.equal(p.outlierDetection?.maxEjectionTime, 300_000);
  assert.equal(p.retryBudget?.percent, 12.5);
  assert.deepEqual(p.faultInjection?.headers, [{ name: 'x-chaos', value: '1' }]);
  assert.equal(p.faultInjection?.abort?.percent, 0.5);
  assert.ok(Object.isFrozen(p.faultInjection), 'validateConfig freezes the result');
});

test('load balancer: ConsistentHash needs a header, the other policies refuse one', () => {
  assertProblem({ loadBalancer: { policy: 'ConsistentHash' } }, 'loadBalancer.consistentHash', /needs consistentHash: \{ header: NAME \}/);
  assertProblem({ loadBalancer: { policy: 'RoundRobin', consistentHash: { header: 'x-user-id' } } }, 'loadBalancer.consistentHash', /only with policy: ConsistentHash \(the policy is RoundRobin\)/);
  assertProblem({ loadBalancer: { consistentHash: { header: 'x-user-id' } } }, 'loadBalancer.consistentHash', /the policy is LeastRequest/);
  assertProblem({ loadBalancer: { policy: 'LeastConn' } }, 'loadBalancer.policy', /policy must be LeastRequest, RoundRobin, WeightedRoundRobin, Random or ConsistentHash \(got "LeastConn"\)/);
  assertProblem({ loadBalancer: { policy: 'ConsistentHash', consistentHash: { header: 'x user' } } }, 'loadBalancer.consistentHash.header', /must be a header name/);
});

test('connection pool: whole numbers; at least 1 connection and request; 0 retries and 0 pending allowed', () => {
  assertProblem({ connectionPool: { maxConnections: 0 } }, 'connectionPool.maxConnections', /maxConnections must be at least 1/);
  assertProblem({ connectionPool: { maxRequests: 1.5 } }, 'connectionPool.maxRequests', /maxRequests must be a whole number/);
  assertProblem({ connectionPool: { maxRetries: -1 } }, 'connectionPool.maxRetries', /maxRetries must be 0 or more/);
  assertProblem({ connectionPool: { maxPendingRequests: '10' } }, 'connectionPool.maxPendingRequests', /must be a whole number/);
  assert.equal(validate({ connectionPool: { maxRetries: 0, maxPendingRequests: 0 } }).connectionPool?.maxRetries, 0);
});

test('outlier detection: cross-field rules say what to change', () => {
  assertProblem({ outlierDetection: { baseEjectionTime: '1m', maxEjectionTime: '30s' } }, 'outlierDetection.maxEjectionTime', /maxEjectionTime \(30s\) must be at least baseEjectionTime \(1m\)/);
  assertProblem({ outlierDetection: { consecutive5xx: 0 } }, 'outlierDetection.consecutive5xx', /both 0, so no endpoint would ever be ejected/);
  assert.equal(validate({ outlierDetection: { consecutive5xx: 0, consecutiveGatewayErrors: 3 } }).outlierDetection?.consecutiveGatewayErrors, 3);
  assertProblem({ outlierDetection: { maxEjectionPercent: 150 } }, 'outlierDetection.maxEjectionPercent', /from 0 to 100 \(a percentage\) \(got 150\)/);
  assertProblem({ outlierDetection: { baseEjectionTime: '0s' } }, 'outlierDetection.baseEjectionTime', /longer than 0/);
  assertProblem({ outlierDetection: { baseEjectionTime: '30' } }, 'outlierDetection.baseEjectionTime', /not a duration/);
});

test('retry budget: ttl from 1s to 60s; percent 0..100', () => {
  assertProblem({ retryBudget: { ttl: '500ms' } }, 'retryBudget.ttl', /ttl must be from 1s to 60s/);
  assertProblem({ retryBudget: { ttl: '2m' } }, 'retryBudget.ttl', /from 1s to 60s/);
  assertProblem({ retryBudget: { percent: -1 } }, 'retryBudget.percent', /from 0 to 100/);
  assertProblem({ retryBudget: { minRetriesPerSecond: -1 } }, 'retryBudget.minRetriesPerSecond', /0 or more/);
});

test('rate limit: requestsPerSecond is required and positive; burst at least 1', () => {
  assertProblem({ rateLimit: {} }, 'rateLimit.requestsPerSecond', /missing required field "requestsPerSecond".*docs\/resilience\.md/);
  assertProblem({ rateLimit: { requestsPerSecond: 0 } }, 'rateLimit.requestsPerSecond', /more than 0/);
  assertProblem({ rateLimit: { requestsPerSecond: 10, burst: 0.5 } }, 'rateLimit.burst', /at least 1/);
  assertProblem({ rateLimit: { requestsPerSecond: 10, perCaller: 'yes' } }, 'rateLimit.perCaller', /true or false/);
});

test('fault injection: needs delay or abort; status 200..599; grpcStatus 1..16; headers need a value', () => {
  assertProblem({ faultInjection: {} }, 'faultInjection', /needs delay \(\{fixed, percent\}\) or abort/);
  assertProblem({ faultInjection: { headers: [{ name: 'x-chaos', value: '1' }] } }, 'faultInjection', /needs delay/);
  assertProblem({ faultInjection: { abort: { status: 99 } } }, 'faultInjection.abort.status', /from 200 to 599/);
  assertProblem({ faultInjection: { abort: { status: 503, grpcStatus: 0 } } }, 'faultInjection.abort.grpcStatus', /from 1 to 16/);
  assertProblem({ faultInjection: { abort: { status: 503, percent: 101 } } }, 'faultInjection.abort.percent', /from 0 to 100/);
  assertProblem({ faultInjection: { delay: { fixed: '0ms' } } }, 'faultInjection.delay.fixed', /longer than 0/);
  assertProblem({ faultInjection: { abort: { status: 503 }, headers: [{ name: 'x-chaos', value: 1 }] } }, 'faultInjection.headers.0.value', /quote it/);
  assertProblem({ faultInjection: { abort: { status: 503 }, headers: [] } }, 'faultInjection.headers', /at least one/);
});

test('unknown fields are refused with the docs to check, at every level', () => {
  assertProblem({ loadBalancing: {} }, 'loadBalancing', /unknown field "loadBalancing"; check its spelling against docs\/resilience\.md/);
  assertProblem({ outlierDetection: { consecutiveErrors: 5 } }, 'outlierDetection.consecutiveErrors', /unknown field/);
  assertProblem({ faultInjection: { abort: { status: 503, httpStatus: 503 } } }, 'faultInjection.abort.httpStatus', /unknown field/);
});

test('every problem is reported at once', () => {
  const problems = problemsOf({ loadBalancer: { policy: 'ConsistentHash' }, connectionPool: { maxConnections: 0 }, faultInjection: {} });
  assert.deepEqual(problems.map((p) => p.path).sort(), ['connectionPool.maxConnections', 'faultInjection', 'loadBalancer.consistentHash']);
});

test('static config: upstreams[].trafficPolicy refuses rateLimit, inbound.trafficPolicy takes only rateLimit', () => {
  const upstream = validateConfig(upstreamTrafficPolicySchema, { loadBalancer: { policy: 'Random' }, outlierDetection: {} }, DOCS);
  assert.equal(upstream.loadBalancer?.policy, 'Random');
  assert.throws(
    () => validateConfig(upstreamTrafficPolicySchema, { rateLimit: { requestsPerSecond: 10 } }, DOCS),
    (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.path === 'rateLimit' && /inbound\.trafficPolicy\.rateLimit/.test(err.problems[0]!.message),
  );
  assert.equal(validateConfig(inboundTrafficPolicySchema, { rateLimit: { requestsPerSecond: 10, perCaller: true } }, DOCS).rateLimit?.perCaller, true);
  assert.throws(
    () => validateConfig(inboundTrafficPolicySchema, { rateLimit: { requestsPerSecond: 10 }, connectionPool: {}, faultInjection: { abort: { status: 503 } } }, DOCS),
    (err: ConfigError) =>
      err.problems.map((p) => p.path).join() === 'connectionPool,faultInjection' && err.problems.every((p) => /applied by each caller's sidecar: set it under upstreams\[\]\.trafficPolicy/.test(p.message)),
  );
});
