import { test } from 'node:test';
import assert from 'node:assert/strict';
import { regexLiteralPrefix } from '../../src/proxy/route/regex.js';
import { hit, router, view } from './route-lib.js';

const to = (path: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ matches: [{ path, ...extra }] });

test('PathPrefix matches whole segments; a trailing / in the value is ignored', () => {
  const r = router([{ name: 'r', rules: [to({ value: '/api' }), to({ value: '/docs/' })] }]);
  assert.equal(hit(r, '/api'), 'default/r/0');
  assert.equal(hit(r, '/api/'), 'default/r/0');
  assert.equal(hit(r, '/api/x/y?z=1'), 'default/r/0');
  assert.equal(hit(r, '/apix'), null);
  assert.equal(hit(r, '/ap'), null);
  assert.equal(hit(r, '/docs'), 'default/r/1', '/docs/ matches /docs');
  assert.equal(hit(r, '/docs/a'), 'default/r/1');
  assert.equal(hit(r, '/docsa'), null);
  assert.equal(hit(r, '/API'), null, 'paths are case-sensitive');
  const all = router([{ name: 'all', rules: [{}] }]);
  for (const path of ['/', '/x', '/x/y/']) assert.equal(hit(all, path), 'default/all/0', path);
});

test('Exact matches the path only, the query string aside', () => {
  const r = router([{ name: 'r', rules: [to({ type: 'Exact', value: '/health' })] }]);
  assert.equal(hit(r, '/health'), 'default/r/0');
  assert.equal(hit(r, '/health?full=1'), 'default/r/0');
  assert.equal(hit(r, '/health/'), null);
  assert.equal(hit(r, '/healthz'), null);
});

test('RegularExpression matches the whole path', () => {
  const r = router([{ name: 'r', rules: [to({ type: 'RegularExpression', value: '/users/[0-9]+' }), to({ type: 'RegularExpression', value: '/a|/b' })] }]);
  assert.equal(hit(r, '/users/42'), 'default/r/0');
  assert.equal(hit(r, '/users/42/orders'), null, 'anchored at the end');
  assert.equal(hit(r, '/v1/users/42'), null, 'anchored at the start');
  assert.equal(hit(r, '/a'), 'default/r/1', 'an alternation is anchored as a whole');
  assert.equal(hit(r, '/b'), 'default/r/1');
  assert.equal(hit(r, '/ab'), null);
});

test('a regex is pre-filtered by its literal prefix, which never excludes a match', () => {
  const cases: [string, string][] = [
    ['/users/[0-9]+', '/users/'],
    ['^/api/v1', '/api/v1'],
    ['/ab?c', '/a'],
    ['/ab*', '/a'],
    ['/ab{0,2}', '/a'],
    ['/ab+', '/ab'],
    ['/a\\.b', '/a'],
    ['/a|/b', ''],
    ['(/a)', ''],
    ['.*', ''],
  ];
  for (const [source, prefix] of cases) assert.equal(regexLiteralPrefix(source), prefix, source);
  const r = router([{ name: 'r', rules: [to({ type: 'RegularExpression', value: '/ab?c/[0-9]+' }), to({ type: 'RegularExpression', value: '^/x/.*' })] }]);
  assert.equal(hit(r, '/ac/1'), 'default/r/0', 'the optional b is not part of the prefix');
  assert.equal(hit(r, '/abc/1'), 'default/r/0');
  assert.equal(hit(r, '/x/y'), 'default/r/1');
});

test('matches indexed by first segment keep the precedence with those that take any segment', () => {
  const r = router([
    { name: 'static', rules: [to({ value: '/static' })] },
    { name: 'images', rules: [to({ type: 'RegularExpression', value: '.*\\.png' })] },
    { name: 'v2', rules: [to({ type: 'RegularExpression', value: '/static/v2/.*' })] },
    { name: 'all', rules: [{}] },
  ]);
  assert.equal(hit(r, '/static/a.png'), 'default/images/0', 'a regex (any segment) before a prefix');
  assert.equal(hit(r, '/static/v2/a.png'), 'default/images/0', 'regexes tie on length: the older route');
  assert.equal(hit(r, '/static/v2/a.css'), 'default/v2/0');
  assert.equal(hit(r, '/static/a.css'), 'default/static/0');
  assert.equal(hit(r, '/x.png'), 'default/images/0', 'a segment no match requires');
  assert.equal(hit(r, '/staticx/a.css'), 'default/all/0');
  assert.equal(hit(r, '/'), 'default/all/0');
  assert.equal(hit(r, ''), 'default/all/0', 'an empty path (not from a valid request) still gets the catch-all');
});

test('method, header and query parameter conditions all apply (AND), matches of a rule are alternatives (OR)', () => {
  const r = router([
    {
      name: 'r',
      rules: [
        {
          matches: [
            { path: { value: '/a' }, method: 'POST', headers: [{ name: 'X-Version', value: 'v2' }, { type: 'RegularExpression', name: 'x-user', value: 'u[0-9]+' }] },
            { queryParams: [{ name: 'debug', value: 'on' }, { type: 'RegularExpression', name: 'id', value: '[a-z ]+' }] },
          ],
        },
      ],
    },
  ]);
  const headers = { 'x-version': 'v2', 'x-user': 'u7' };
  assert.equal(hit(r, '/a/b', { method: 'POST', headers }), 'default/r/0', 'header names match case-insensitively');
  assert.equal(hit(r, '/a/b', { method: 'GET', headers }), null);
  assert.equal(hit(r, '/a/b', { method: 'POST', headers: { ...headers, 'x-version': 'V2' } }), null, 'values are case-sensitive');
  assert.equal(hit(r, '/a/b', { method: 'POST', headers: { ...headers, 'x-user': 'xu7' } }), null, 'header regexes match the whole value');
  assert.equal(hit(r, '/a/b', { method: 'POST', headers: { 'x-version': 'v2' } }), null);
  assert.equal(hit(r, '/other?debug=on&id=abc'), 'default/r/0');
  assert.equal(hit(r, '/other?id=abc&debug=on'), 'default/r/0', 'order of parameters does not matter');
  assert.equal(hit(r, '/other?debug=on&id=a+b%20c'), 'default/r/0', 'values are percent-decoded, + is a space');
  assert.equal(hit(r, '/other?debu%67=on&id=x'), 'default/r/0', 'names are percent-decoded');
  assert.equal(hit(r, '/other?debug=on&id=abc1'), null);
  assert.equal(hit(r, '/other?debug=off&debug=on&id=x'), null, 'the first value of a repeated parameter counts');
  assert.equal(hit(r, '/other?debug=onx&id=x'), null);
  assert.equal(hit(r, '/other?debugx=on&id=x'), null);
  assert.equal(hit(r, '/other?debug&id=x'), null, 'a parameter without = has the empty value');
  assert.equal(hit(r, '/other?debug=on&id=%zz'), null, 'a broken escape matches nothing');
  assert.equal(hit(r, '/other'), null);
  const empty = router([{ name: 'e', rules: [{ matches: [{ queryParams: [{ name: 'flag', value: '' }] }] }] }]);
  assert.equal(hit(empty, '/?flag'), 'default/e/0');
  assert.equal(hit(empty, '/?flag='), 'default/e/0');
  assert.equal(hit(empty, '/?x=1&flag=&y'), 'default/e/0');
  assert.equal(hit(empty, '/?flags='), null);
});

test('precedence across routes: Exact > RegularExpression > PathPrefix, longest prefix first, whatever the route order', () => {
  const r = router([
    { name: 'catch-all', rules: [{}] },
    { name: 'short', rules: [to({ value: '/api' })] },
    { name: 'long', rules: [to({ value: '/api/v2' })] },
    { name: 'regex', rules: [to({ type: 'RegularExpression', value: '/api/v2/users/[0-9]+' })] },
    { name: 'exact', rules: [to({ type: 'Exact', value: '/api/v2/users/42' })] },
  ]);
  assert.equal(hit(r, '/api/v2/users/42'), 'default/exact/0');
  assert.equal(hit(r, '/api/v2/users/43'), 'default/regex/0', 'a regex is tried before every prefix (they are the catch-alls)');
  assert.equal(hit(r, '/api/v2/users'), 'default/long/0');
  assert.equal(hit(r, '/api/v1'), 'default/short/0');
  assert.equal(hit(r, '/apis'), 'default/catch-all/0');
  const trailing = router([{ name: 'a', rules: [to({ value: '/api/' })] }, { name: 'b', rules: [to({ value: '/api/v' })] }]);
  assert.equal(hit(trailing, '/api/v/1'), 'default/b/0', 'a trailing / does not count as a character');
});

test('precedence on the same path: method, then more headers, then more query parameters', () => {
  const r = router([
    {
      name: 'r',
      rules: [
        { matches: [{ queryParams: [{ name: 'a', value: '1' }, { name: 'b', value: '1' }, { name: 'c', value: '1' }] }] },
        { matches: [{ headers: [{ name: 'x-a', value: '1' }], queryParams: [{ name: 'a', value: '1' }] }] },
        { matches: [{ headers: [{ name: 'x-a', value: '1' }, { name: 'x-b', value: '1' }] }] },
        { matches: [{ method: 'GET' }] },
        {},
      ],
    },
  ]);
  const everything = { headers: { 'x-a': '1', 'x-b': '1' } };
  assert.equal(hit(r, '/?a=1&b=1&c=1', everything), 'default/r/3', 'a method match beats any number of headers');
  assert.equal(hit(r, '/?a=1&b=1&c=1', { ...everything, method: 'PUT' }), 'default/r/2', 'two headers beat one header and a query parameter');
  assert.equal(hit(r, '/?a=1&b=1&c=1', { method: 'PUT', headers: { 'x-a': '1' } }), 'default/r/1', 'a header beats query parameters');
  assert.equal(hit(r, '/?a=1&b=1&c=1', { method: 'PUT' }), 'default/r/0');
  assert.equal(hit(r, '/?a=1', { method: 'PUT' }), 'default/r/4');
  // The path ranks before everything else: a longer prefix without conditions beats a shorter one with them.
  const path = router([{ name: 'p', rules: [{ matches: [{ path: { value: '/a' }, method: 'GET', headers: [{ name: 'x', value: '1' }] }] }, to({ value: '/a/b' })] }]);
  assert.equal(hit(path, '/a/b', { headers: { x: '1' } }), 'default/p/1');
});

test('ties: the older route, then namespace/name alphabetically, then rule order, then match order', () => {
  const same = { matches: [{ path: { value: '/x' } }] };
  const r = router([
    { name: 'zeta', createdOrder: 1, rules: [same] },
    { name: 'alpha', createdOrder: 2, rules: [same] },
  ]);
  assert.equal(hit(r, '/x'), 'default/zeta/0', 'older first, whatever the name');
  const named = router([
    { name: 'zeta', namespace: 'a', createdOrder: 5, rules: [same] },
    { name: 'alpha', namespace: 'b', createdOrder: 5, rules: [same] },
    { name: 'beta', namespace: 'a', createdOrder: 5, rules: [same] },
  ]);
  assert.equal(hit(named, '/x'), 'a/beta/0', 'a/beta < a/zeta < b/alpha');
  const rules = router([{ name: 'r', rules: [{ name: 'first', ...same }, { name: 'second', ...same }] }]);
  assert.equal(hit(rules, '/x'), 'default/r/first', 'the rule name labels the rule when given');
  // A later rule with a better match still wins: precedence is over all matches, rule order only breaks ties.
  const better = router([{ name: 'r', rules: [same, to({ type: 'Exact', value: '/x' })] }]);
  assert.equal(hit(better, '/x'), 'default/r/1');
});

test('Gateway API conformance-style: matching across routes', () => {
  // Two routes on one service, as in the HTTPRouteMatchingAcrossRoutes conformance test.
  const r = router([
    {
      name: 'matching-part1',
      rules: [
        { matches: [{ path: { type: 'Exact', value: '/' } }], backendRefs: [{ name: 'v1' }] },
        { matches: [{ path: { value: '/v2' } }], backendRefs: [{ name: 'v2' }] },
      ],
    },
    {
      name: 'matching-part2',
      rules: [
        { matches: [{ headers: [{ name: 'version', value: 'two' }] }], backendRefs: [{ name: 'v2' }] },
        { matches: [{ path: { value: '/v2' }, headers: [{ name: 'version', value: 'two' }] }], backendRefs: [{ name: 'v2' }] },
        { matches: [{ path: { value: '/v3' } }], backendRefs: [{ name: 'v3' }] },
      ],
    },
  ]);
  const backend = (target: string, headers: Record<string, string> = {}) => r.match(view(target, { headers }))?.backends.pick() ?? null;
  assert.equal(hit(r, '/'), 'default/matching-part1/0');
  assert.equal(hit(r, '/v2/example'), 'default/matching-part1/1');
  assert.equal(hit(r, '/', { headers: { version: 'two' } }), 'default/matching-part1/0', 'Exact / beats a header match on prefix /');
  assert.equal(hit(r, '/foo', { headers: { version: 'two' } }), 'default/matching-part2/0');
  assert.equal(hit(r, '/v2', { headers: { version: 'two' } }), 'default/matching-part2/1', 'same prefix, one header more');
  assert.equal(hit(r, '/v3/x'), 'default/matching-part2/2');
  assert.equal(hit(r, '/v4'), null, 'nothing matches: the pipeline answers 404');
  assert.equal(backend('/v3/x'), 'default/v3');
  assert.equal(backend('/v2', { version: 'two' }), 'default/v2');
});

test('GRPCRoute: service and method matches become paths /<service>/<method>', () => {
  const r = router([
    {
      kind: 'GRPCRoute',
      name: 'g',
      rules: [
        { name: 'exact', matches: [{ method: { service: 'shop.v1.Cart', method: 'Get' } }] },
        { name: 'service', matches: [{ method: { service: 'shop.v1.Cart' } }] },
        { name: 'method', matches: [{ method: { method: 'Health' } }] },
        { name: 'regex', matches: [{ method: { type: 'RegularExpression', service: 'shop\\.v[0-9]+\\.Orders', method: 'List.*' } }] },
        { name: 'regex-service', matches: [{ method: { type: 'RegularExpression', service: 'audit\\..*' } }] },
      ],
    },
  ]);
  assert.equal(hit(r, '/shop.v1.Cart/Get', { method: 'POST' }), 'default/g/exact');
  assert.equal(hit(r, '/shop.v1.Cart/Put', { method: 'POST' }), 'default/g/service');
  assert.equal(hit(r, '/shop.v1.CartX/Put'), null, 'a service prefix is a whole segment');
  assert.equal(hit(r, '/any.Service/Health'), 'default/g/method');
  assert.equal(hit(r, '/any.Service/HealthCheck'), null);
  assert.equal(hit(r, '/a/b/Health'), null, 'a method-only match takes one service segment');
  assert.equal(hit(r, '/shop.v2.Orders/ListAll'), 'default/g/regex');
  assert.equal(hit(r, '/shop.v2.Orders/Get'), null);
  assert.equal(hit(r, '/audit.v1.Log/Write'), 'default/g/regex-service');
  assert.equal(hit(r, '/audit.v1.Log/Write/x'), null, 'the method part is one segment');
  const dotted = router([{ kind: 'GRPCRoute', name: 'd', rules: [{ matches: [{ method: { method: 'Get' } }] }, { matches: [{ method: { service: 'a.B' } }] }] }]);
  assert.equal(hit(dotted, '/aXB/Get'), 'default/d/0', 'an Exact service is not a pattern: a.B does not match aXB');
});

test('GRPCRoute precedence: exact, then characters of service, then of method, then headers', () => {
  const r = router([
    {
      kind: 'GRPCRoute',
      name: 'g',
      rules: [
        { name: 'all', matches: [{ headers: [{ name: 'x-a', value: '1' }, { name: 'x-b', value: '1' }] }] },
        { name: 'method', matches: [{ method: { method: 'Get' }, headers: [{ name: 'x-a', value: '1' }] }] },
        { name: 'long-method', matches: [{ method: { type: 'RegularExpression', method: 'Get[A-Z]?' } }] },
        { name: 'service', matches: [{ method: { service: 'shop.Cart' } }] },
        { name: 'service-header', matches: [{ method: { service: 'shop.Cart' }, headers: [{ name: 'x-a', value: '1' }] }] },
        { name: 'exact', matches: [{ method: { service: 'shop.Cart', method: 'Get' } }] },
      ],
    },
  ]);
  const headers = { 'x-a': '1', 'x-b': '1' };
  assert.equal(hit(r, '/shop.Cart/Get', { headers }), 'default/g/exact');
  assert.equal(hit(r, '/shop.Cart/Put', { headers }), 'default/g/service-header', 'same service characters: more headers');
  assert.equal(hit(r, '/shop.Cart/Put'), 'default/g/service');
  assert.equal(hit(r, '/other.Svc/Get', { headers }), 'default/g/long-method', 'more method characters (the regex is longer) first');
  assert.equal(hit(r, '/other.Svc/Put', { headers }), 'default/g/all', 'a match without a method comes last');
  assert.equal(hit(r, '/other.Svc/Put'), null);
});

test('HTTPRoute and GRPCRoute merge into one table', () => {
  const r = router([
    { name: 'web', createdOrder: 1, rules: [{}, to({ type: 'Exact', value: '/shop.Cart/Get' }), to({ value: '/shop.Cart' })] },
    { kind: 'GRPCRoute', name: 'grpc', createdOrder: 2, rules: [{ matches: [{ method: { service: 'shop.Cart' } }] }, { matches: [{ method: { service: 'shop.Cart', method: 'Get' } }] }, {}] },
  ]);
  assert.equal(hit(r, '/shop.Cart/Put'), 'default/grpc/0', 'a gRPC service match is a pattern: before HTTP prefixes');
  assert.equal(hit(r, '/shop.Cart/Get'), 'default/web/1', 'same exact path: the older route');
  assert.equal(hit(r, '/index.html'), 'default/web/0', 'catch-alls of both kinds tie: the older route');
});

test('the router returns shared rule objects and no match on an empty table', () => {
  const r = router([{ name: 'r', rules: [{ matches: [{ path: { value: '/a' } }, { path: { value: '/b' } }] }] }]);
  assert.strictEqual(r.match(view('/a')), r.match(view('/b/c')));
  assert.equal(router([]).match(view('/')), null);
});
