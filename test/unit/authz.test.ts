import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileAuthz, describeDenial, type AuthzPolicyInput } from '../../src/proxy/authz/authz.js';
import { canonicalPath, readingsOf, pathEnd } from '../../src/proxy/authz/paths.js';
import type { AuthorizationRule } from '../../src/control/resources.js';

const TD = 'example.org';
const WEB = 'spiffe://example.org/ns/default/svc/web';
const BILLING = 'spiffe://example.org/ns/shop/svc/billing';
const OTHER_TD = 'spiffe://other.org/ns/default/svc/web';
const noHeaders = () => undefined;

function authz(policies: AuthzPolicyInput[], defaultAction: 'allow' | 'deny' = 'deny', protocol: 'http' | 'tcp' = 'http') {
  return compileAuthz({ policies, defaultAction, trustDomain: TD, protocol });
}
const one = (rules: AuthorizationRule[], defaultAction: 'allow' | 'deny' = 'deny', protocol: 'http' | 'tcp' = 'http') => authz([{ name: 'p', rules }], defaultAction, protocol);

/** Decision as `allow|deny|audit RULE` for compact assertions. */
function get(a: ReturnType<typeof one>, caller: string | null, target: string, method = 'GET', headers: Record<string, string> = {}): string {
  const d = a.checkRequest(caller, method, target, (name) => headers[name]);
  return `${d.audited ? 'audit' : d.allowed ? 'allow' : 'deny'} ${d.rule}`;
}

test('the first matching rule decides, across policies in the order given', () => {
  const a = authz([
    { name: 'a-first', rules: [{ action: 'deny', from: [{ spiffeId: BILLING }] }] },
    { name: 'b-second', rules: [{ action: 'allow', from: ['*'] }, { action: 'deny', from: [{ spiffeId: WEB }] }] },
  ]);
  assert.equal(get(a, BILLING, '/'), 'deny a-first#0');
  assert.equal(get(a, WEB, '/'), 'allow b-second#0', 'a later deny does not override an earlier allow');
  const d = a.checkRequest(BILLING, 'GET', '/', noHeaders);
  assert.equal(describeDenial(d), 'denied by policy a-first rule 0');
  assert.strictEqual(a.checkRequest(BILLING, 'GET', '/x', noHeaders), d, 'decisions are shared objects (no allocation per request)');
});

test('default action when no rule matches', () => {
  assert.equal(get(one([{ action: 'allow', from: [{ spiffeId: WEB }] }], 'deny'), BILLING, '/'), 'deny default');
  assert.equal(get(one([{ action: 'deny', from: [{ spiffeId: WEB }] }], 'allow'), BILLING, '/'), 'allow default');
  assert.equal(get(authz([], 'deny'), WEB, '/'), 'deny default');
  assert.equal(describeDenial(authz([], 'deny').checkRequest(WEB, 'GET', '/', noHeaders)), 'denied by the default action (no rule allows it)');
});

test('sources: *, spiffeId, service (default namespace), service in a namespace, namespace', () => {
  const rule = (from: AuthorizationRule['from']) => one([{ action: 'allow', from }]);
  const everyone = rule(['*']);
  for (const caller of [WEB, BILLING, OTHER_TD, null]) assert.equal(get(everyone, caller, '/'), 'allow p#0', String(caller));

  const byId = rule([{ spiffeId: WEB }]);
  assert.equal(get(byId, WEB, '/'), 'allow p#0');
  assert.equal(get(byId, `${WEB}x`, '/'), 'deny default');
  assert.equal(get(byId, OTHER_TD, '/'), 'deny default');

  const byService = rule([{ service: 'web' }]);
  assert.equal(get(byService, WEB, '/'), 'allow p#0', 'namespace defaults to "default"');
  assert.equal(get(byService, 'spiffe://example.org/ns/shop/svc/web', '/'), 'deny default');
  assert.equal(get(byService, OTHER_TD, '/'), 'deny default', 'only this trust domain');
  assert.equal(get(rule([{ service: 'billing', namespace: 'shop' }]), BILLING, '/'), 'allow p#0');

  const byNamespace = rule([{ namespace: 'shop' }]);
  assert.equal(get(byNamespace, BILLING, '/'), 'allow p#0');
  assert.equal(get(byNamespace, WEB, '/'), 'deny default');
  assert.equal(get(byNamespace, 'spiffe://other.org/ns/shop/svc/billing', '/'), 'deny default');
  assert.equal(get(byNamespace, 'spiffe://example.org/ns/shop/svc/billing/extra', '/'), 'deny default', 'not a weft service ID');
  assert.equal(get(byNamespace, 'spiffe://example.org/ns/shop/svc/', '/'), 'deny default');
  assert.equal(get(byNamespace, 'spiffe://example.org/ns/shopping/svc/x', '/'), 'deny default');
});

test('plaintext callers match only "*"', () => {
  const a = one([
    { action: 'allow', from: [{ spiffeId: WEB }, { service: 'web' }, { namespace: 'default' }] },
    { action: 'audit', from: ['*'] },
  ]);
  assert.equal(get(a, null, '/'), 'audit p#1');
  assert.equal(get(one([{ action: 'deny', from: [{ namespace: 'default' }] }], 'allow'), null, '/'), 'allow default', 'a deny on a namespace does not catch plaintext');
});

test('paths: exact and prefix, the query string is never part of the path', () => {
  const a = one([
    { action: 'allow', from: ['*'], to: { paths: [{ exact: '/health' }] } },
    { action: 'allow', from: ['*'], to: { paths: [{ prefix: '/public/' }] } },
  ]);
  assert.equal(get(a, WEB, '/health'), 'allow p#0');
  assert.equal(get(a, WEB, '/health?full=1'), 'allow p#0');
  assert.equal(get(a, WEB, '/health#x'), 'allow p#0');
  assert.equal(get(a, WEB, '/health/'), 'deny default');
  assert.equal(get(a, WEB, '/healthz'), 'deny default');
  assert.equal(get(a, WEB, '/public/'), 'allow p#1');
  assert.equal(get(a, WEB, '/public/a/b?c=/d'), 'allow p#1');
  assert.equal(get(a, WEB, '/public'), 'deny default', 'prefix is a plain string prefix: /public does not start with /public/');
  assert.equal(get(a, WEB, '/x?/public/'), 'deny default', 'a prefix in the query does not count');
  assert.equal(get(a, WEB, '/publicity'), 'deny default');
  assert.equal(get(a, WEB, '*', 'OPTIONS'), 'deny default');
  assert.equal(get(a, WEB, 'http://api.example/public/x?y'), 'allow p#1', 'absolute-form is read as its path');
  assert.equal(get(one([{ action: 'allow', from: ['*'], to: { paths: [{ prefix: '/pub' }] } }]), WEB, '/publicity'), 'allow p#0', 'documented: no segment boundary');
});

test('methods: any of the listed; a deny also catches other spellings of the method', () => {
  const a = one([{ action: 'allow', from: ['*'], to: { methods: ['GET', 'HEAD'] } }]);
  assert.equal(get(a, WEB, '/', 'GET'), 'allow p#0');
  assert.equal(get(a, WEB, '/', 'HEAD'), 'allow p#0');
  assert.equal(get(a, WEB, '/', 'POST'), 'deny default');
  assert.equal(get(a, WEB, '/', 'get'), 'deny default', 'methods are case-sensitive for allow');
  const d = one([{ action: 'deny', from: ['*'], to: { methods: ['DELETE'] } }], 'allow');
  assert.equal(get(d, WEB, '/', 'delete'), 'deny p#0');
  assert.equal(get(d, WEB, '/', 'GET'), 'allow default');
});

test('headers: exact, prefix, present true/false; all must match; names case-insensitive', () => {
  const a = one([
    {
      action: 'allow',
      from: ['*'],
      to: {
        headers: [
          { name: 'X-Tenant', exact: 'blue' },
          { name: 'user-agent', prefix: 'curl/' },
          { name: 'x-debug', present: false },
          { name: 'authorization', present: true },
        ],
      },
    },
  ]);
  const ok = { 'x-tenant': 'blue', 'user-agent': 'curl/8.5', authorization: 'Bearer x' };
  assert.equal(get(a, WEB, '/', 'GET', ok), 'allow p#0');
  assert.equal(get(a, WEB, '/', 'GET', { ...ok, 'x-tenant': 'bluest' }), 'deny default');
  assert.equal(get(a, WEB, '/', 'GET', { ...ok, 'user-agent': 'wget' }), 'deny default');
  assert.equal(get(a, WEB, '/', 'GET', { ...ok, 'x-debug': '1' }), 'deny default');
  const { authorization: _a, ...noAuth } = ok;
  assert.equal(get(a, WEB, '/', 'GET', noAuth), 'deny default');
  const { 'x-tenant': _t, ...noTenant } = ok;
  assert.equal(get(a, WEB, '/', 'GET', noTenant), 'deny default', 'exact on an absent header does not match');
});

test('all fields of `to` must match, with the sources', () => {
  const a = one([{ action: 'allow', from: [{ service: 'web' }], to: { paths: [{ prefix: '/api/' }], methods: ['POST'], headers: [{ name: 'x-k', present: true }] } }]);
  assert.equal(get(a, WEB, '/api/x', 'POST', { 'x-k': '' }), 'allow p#0');
  assert.equal(get(a, BILLING, '/api/x', 'POST', { 'x-k': '' }), 'deny default');
  assert.equal(get(a, WEB, '/api/x', 'GET', { 'x-k': '' }), 'deny default');
  assert.equal(get(a, WEB, '/other', 'POST', { 'x-k': '' }), 'deny default');
  assert.equal(get(a, WEB, '/api/x', 'POST'), 'deny default');
});

test('audit: allowed, marked audited, decided by the first matching rule', () => {
  const a = one([
    { action: 'audit', from: [{ service: 'web' }], to: { methods: ['DELETE'] } },
    { action: 'allow', from: ['*'] },
  ]);
  const d = a.checkRequest(WEB, 'DELETE', '/x', noHeaders);
  assert.deepEqual({ ...d }, { allowed: true, audited: true, rule: 'p#0' });
  assert.deepEqual({ ...a.checkRequest(WEB, 'GET', '/x', noHeaders) }, { allowed: true, audited: false, rule: 'p#1' });
});

test('TCP: rules with a `to` section never match a connection', () => {
  const rules: AuthorizationRule[] = [
    { action: 'deny', from: ['*'], to: { paths: [{ prefix: '/' }] } },
    { action: 'allow', from: [{ service: 'web' }], to: {} },
    { action: 'audit', from: [{ namespace: 'shop' }] },
  ];
  for (const protocol of ['tcp', 'http'] as const) {
    const a = one(rules, 'deny', protocol);
    assert.deepEqual({ ...a.checkConnection(WEB) }, { allowed: true, audited: false, rule: 'p#1' }, 'an empty `to` covers everything');
    assert.deepEqual({ ...a.checkConnection(BILLING) }, { allowed: true, audited: true, rule: 'p#2' });
    assert.deepEqual({ ...a.checkConnection(null) }, { allowed: false, audited: false, rule: 'default' });
  }
});

test('path normalisation: dot segments, duplicate slashes and escapes cannot get around a prefix', () => {
  const denyAdmin = one(
    [
      { action: 'deny', from: ['*'], to: { paths: [{ prefix: '/admin' }] } },
      { action: 'deny', from: ['*'], to: { paths: [{ exact: '/secret' }] } },
    ],
    'allow',
  );
  for (const target of [
    '/admin',
    '//admin',
    '/./admin',
    '/x/../admin',
    '/x/%2e%2e/admin',
    '/x/%2E%2E/admin',
    '/%61dmin',
    '/x/..%2fadmin',
    '/x/..%2Fadmin',
    '/x/..%5cadmin',
    '/x\\..\\admin',
    '/../../admin/x',
    'http://h/x/../admin',
    '/secret',
    '/a/../secret?x',
    '//secret',
    '/secre%74',
  ]) {
    assert.match(get(denyAdmin, WEB, target), /^deny p#[01]$/, target);
  }
  for (const target of ['/', '/public', '/adm1nistrator', '/x/admin', '/secret/x', '/x%2Fadmin']) {
    assert.equal(get(denyAdmin, WEB, target), 'allow default', target);
  }

  const allowPublic = one([{ action: 'allow', from: ['*'], to: { paths: [{ prefix: '/public/' }] } }], 'deny');
  for (const target of ['/public/x', '/public//x', '/public/./x', '/public/a/../b', '/%70ublic/x', '/public/x%2Fy']) {
    // %2F inside /public/: every reading stays under /public/.
    assert.equal(get(allowPublic, WEB, target), 'allow p#0', target);
  }
  for (const target of ['/public/../private', '/public/%2e%2e/private', '/public/..%2Fprivate', '/public/..%5Cprivate', '/public\\..\\..\\private', '/public/x/../../private', '/publi%63/../private']) {
    assert.equal(get(allowPublic, WEB, target), 'deny default', target);
  }
});

test('path helpers', () => {
  assert.equal(pathEnd('/a?b#c'), 2);
  assert.equal(pathEnd('/a#c?d'), 2);
  assert.equal(pathEnd('/a'), 2);
  assert.equal(readingsOf('/plain/path?x=/../', 12), null, 'a plain path is compared as received');
  assert.deepEqual(readingsOf('/a/%2e/b', 8), { first: '/a/b', second: null });
  assert.deepEqual(readingsOf('/a%2fb/../c', 11), { first: '/c', second: '/a/c' });
  assert.equal(canonicalPath('/a/b/..', false), '/a/');
  assert.equal(canonicalPath('/', false), '/');
  assert.equal(canonicalPath('/..', false), '/');
  assert.equal(canonicalPath('/a%20b%7e%25%2f', false), '/a%20b~%25%2F', 'escapes of spaces, % and / are kept (upper case)');
  // A rule path with characters a request must escape is compared in escaped form.
  const a = one([{ action: 'allow', from: ['*'], to: { paths: [{ exact: '/café' }] } }]);
  assert.equal(get(a, WEB, '/caf%C3%A9'), 'allow p#0');
  assert.equal(get(a, WEB, '/caf%c3%a9'), 'allow p#0');
});
