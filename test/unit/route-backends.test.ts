import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendRefConfig } from '../../src/config/route-schema.js';
import { GRPC_STATUS } from '../../src/proxy/route/grpc-status.js';
import { compilePicker } from '../../src/proxy/route/picker.js';
import { compileRouter } from '../../src/proxy/route/router.js';
import { compileTcpRoutes } from '../../src/proxy/route/tcp.js';
import type { BackendPicker } from '../../src/proxy/route/types.js';
import { input, resolveName, router, seeded, tcpInput, view } from './route-lib.js';

/** Shares of `n` draws, by backend (null as "500"). */
function shares(picker: BackendPicker<string>, n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const b = picker.pick() ?? '500';
    counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  return new Map([...counts].map(([k, v]) => [k, v / n]));
}

const N = 200_000;
/** Five standard deviations of a share near 0.1 over N draws (≈ 0.0034): a seeded run stays well inside. */
const BOUND = 5 * Math.sqrt((0.1 * 0.9) / N);

test('weighted picking: a 90/10 canary between subsets', () => {
  const r = router([{ name: 'canary', rules: [{ backendRefs: [{ name: 'api', subset: { version: 'v1' }, weight: 90 }, { name: 'api', subset: { version: 'v2' }, weight: 10 }] }] }], { random: seeded(42) });
  const rule = r.match(view('/'))!;
  assert.equal(rule.noBackends, false);
  assert.deepEqual(rule.backends.all, ['default/api[version=v1]', 'default/api[version=v2]']);
  const s = shares(rule.backends, N);
  assert.ok(Math.abs(s.get('default/api[version=v2]')! - 0.1) < BOUND, `v2 share ${s.get('default/api[version=v2]')}`);
  assert.ok(Math.abs(s.get('default/api[version=v1]')! - 0.9) < BOUND);
});

test('weighted picking: the built-in generator (no random injected) keeps the weights', () => {
  const s = shares(compilePicker([{ backend: 'a', weight: 90 }, { backend: 'b', weight: 10 }]), N);
  assert.ok(Math.abs(s.get('b')! - 0.1) < BOUND, `b share ${s.get('b')}`);
});

test('weighted picking: an unresolved backendRef keeps its share, which gets null (500)', () => {
  const picker = compilePicker([{ backend: 'a', weight: 3 }, { backend: null, weight: 1 }], seeded(7));
  assert.deepEqual(picker.all, ['a']);
  const s = shares(picker, N);
  assert.ok(Math.abs(s.get('500')! - 0.25) < BOUND * 1.5, `500 share ${s.get('500')}`);
  assert.ok(Math.abs(s.get('a')! - 0.75) < BOUND * 1.5);
});

test('weighted picking: weight 0, one backend, nothing to pick', () => {
  const never = () => assert.fail('no random draw for a single backend');
  assert.equal(compilePicker([{ backend: 'a', weight: 5 }, { backend: 'b', weight: 0 }], never).pick(), 'a');
  assert.deepEqual(compilePicker([{ backend: 'a', weight: 5 }, { backend: 'b', weight: 0 }], never).all, ['a'], 'weight 0: never sent to');
  const zero = compilePicker([{ backend: 'a', weight: 0 }], never);
  assert.equal(zero.pick(), null);
  assert.equal(zero.totalWeight, 0);
  assert.equal(compilePicker([{ backend: null, weight: 1 }, { backend: null, weight: 2 }], never).pick(), null);
  const same = compilePicker([{ backend: 'a', weight: 1 }, { backend: 'a', weight: 1 }], seeded(1));
  assert.deepEqual(same.all, ['a'], 'all lists distinct backends');
  // Edge values of random: 0 gives the first, just under 1 the last.
  assert.equal(compilePicker([{ backend: 'a', weight: 1 }, { backend: 'b', weight: 1 }], () => 0).pick(), 'a');
  assert.equal(compilePicker([{ backend: 'a', weight: 1 }, { backend: 'b', weight: 1 }], () => 0.999999).pick(), 'b');
});

test('rules without usable backends: noBackends (the pipeline answers 500)', () => {
  const r = router([
    {
      name: 'r',
      rules: [
        { matches: [{ path: { value: '/none' } }] },
        { matches: [{ path: { value: '/missing' } }], backendRefs: [{ name: 'missing-a' }, { name: 'missing-b', weight: 3 }] },
        { matches: [{ path: { value: '/zero' } }], backendRefs: [{ name: 'a', weight: 0 }] },
        { matches: [{ path: { value: '/some' } }], backendRefs: [{ name: 'a' }, { name: 'missing' }] },
      ],
    },
  ]);
  for (const path of ['/none', '/missing', '/zero']) {
    const rule = r.match(view(path))!;
    assert.equal(rule.noBackends, true, path);
    assert.equal(rule.backends.pick(), null, path);
  }
  assert.equal(r.match(view('/some'))!.noBackends, false, 'half the requests get a backend');
});

test('backendRefs resolve once, with the route namespace filled in and the subset passed', () => {
  const seen: BackendRefConfig[] = [];
  compileRouter(
    [input({ name: 'r', namespace: 'shop', rules: [{ backendRefs: [{ name: 'a', subset: { version: 'v2' }, port: 8080 }, { name: 'b', namespace: 'other', weight: 5 }] }] })],
    (ref) => {
      seen.push(ref);
      return ref.name;
    },
  );
  assert.deepEqual(seen, [
    { kind: 'Service', name: 'a', namespace: 'shop', port: 8080, subset: { version: 'v2' } },
    { kind: 'Service', name: 'b', namespace: 'other' },
  ]);
});

test('mirror, timeouts and retries compile into the rule', () => {
  const r = router([
    {
      name: 'r',
      rules: [
        {
          matches: [{ path: { value: '/a' } }],
          filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, percent: 25 } }],
          timeouts: { request: '10s', backendRequest: '0s' },
          retry: { attempts: 3, codes: [502, 503] },
        },
        { matches: [{ path: { value: '/b' } }], filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'missing' } } }], timeouts: { request: '0s', backendRequest: '1s' }, retry: { attempts: 0 } },
        { matches: [{ path: { value: '/c' } }], retry: { backoff: '1s' } },
      ],
    },
    { kind: 'GRPCRoute', name: 'g', rules: [{ matches: [{ method: { service: 'shop.Cart' } }], retry: { codes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED', 4] } }] },
  ]);
  const a = r.match(view('/a'))!;
  assert.deepEqual(a.mirror, { backend: 'default/shadow', percent: 25 });
  assert.equal(a.requestTimeoutMs, 10_000);
  assert.equal(a.backendTimeoutMs, null, '0s disables a timeout');
  assert.deepEqual(a.retry && { ...a.retry, codes: [...a.retry.codes], grpcCodes: [...a.retry.grpcCodes] }, { attempts: 3, codes: [502, 503], grpcCodes: [], backoffMs: 25 });
  const b = r.match(view('/b'))!;
  assert.equal(b.mirror, null, 'an unresolved mirror backend mirrors nothing');
  assert.equal(b.requestTimeoutMs, null);
  assert.equal(b.backendTimeoutMs, 1_000);
  assert.equal(b.retry, null, 'attempts 0: no retry');
  const c = r.match(view('/c'))!.retry!;
  assert.equal(c.attempts, 1);
  assert.equal(c.backoffMs, 1_000);
  assert.equal(c.codes.size, 0, 'no codes: only connection failures are retried');
  const g = r.match(view('/shop.Cart/Get'))!;
  assert.deepEqual([...g.retry!.grpcCodes], [GRPC_STATUS.UNAVAILABLE, GRPC_STATUS.RESOURCE_EXHAUSTED, GRPC_STATUS.DEADLINE_EXCEEDED]);
  assert.equal(g.retry!.codes.size, 0);
  assert.equal(g.name, 'default/g/0');
});

test('TCPRoute: null when none is attached; the oldest route decides; weighted split', () => {
  assert.equal(compileTcpRoutes([], resolveName), null);
  const picker = compileTcpRoutes(
    [
      tcpInput('newer', [{ backendRefs: [{ name: 'other' }] }], 2),
      tcpInput('split', [{ backendRefs: [{ name: 'db', weight: 9 }, { name: 'db-next', weight: 1 }] }], 1, 'data'),
    ],
    resolveName,
    { random: seeded(3) },
  )!;
  assert.deepEqual(picker.all, ['data/db', 'data/db-next']);
  const s = shares(picker, N);
  assert.ok(Math.abs(s.get('data/db-next')! - 0.1) < BOUND, `db-next share ${s.get('data/db-next')}`);
  const tie = compileTcpRoutes([tcpInput('zeta', [{ backendRefs: [{ name: 'z' }] }]), tcpInput('alpha', [{ backendRefs: [{ name: 'a' }] }])], resolveName)!;
  assert.equal(tie.pick(), 'default/a', 'same age: namespace/name alphabetically');
  const broken = compileTcpRoutes([tcpInput('t', [{ backendRefs: [{ name: 'missing' }] }])], resolveName)!;
  assert.equal(broken.pick(), null, 'an unresolved backend: the pipeline closes the connection');
});
