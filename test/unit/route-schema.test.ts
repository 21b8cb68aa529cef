import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/problems.js';
import { grpcRouteSpec, httpRouteSpec, staticRoutesSchema, tcpRouteSpec, ROUTE_DOCS } from '../../src/config/route-schema.js';
import { regexProblem } from '../../src/proxy/route/regex.js';
import { GRPC_STATUS, parseGrpcRetryCode } from '../../src/proxy/route/grpc-status.js';

const parentRefs = [{ name: 'api' }];

/** The problems as `path: message` lines (without the "(got …)" suffix). */
function problemsOf(schema: Parameters<typeof validateConfig>[0], raw: unknown): string[] {
  try {
    validateConfig(schema, raw, ROUTE_DOCS);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems.map((p) => `${p.path}: ${p.message.replace(/ \(got .*\)$/, '')}`);
  }
  assert.fail('expected the route to be refused');
}

function expectProblems(schema: Parameters<typeof validateConfig>[0], raw: unknown, expected: [path: string, message: RegExp][]): void {
  const problems = problemsOf(schema, raw);
  for (const [path, message] of expected) {
    assert.ok(
      problems.some((p) => p.startsWith(`${path}: `) && message.test(p.slice(path.length + 2))),
      `no problem at ${path} matching ${message}; got:\n  ${problems.join('\n  ')}`,
    );
  }
  assert.equal(problems.length, expected.length, `unexpected extra problems:\n  ${problems.join('\n  ')}`);
}

test('HTTPRoute: a minimal spec gets the Gateway API defaults', () => {
  const spec = validateConfig(httpRouteSpec, { parentRefs, rules: [{ backendRefs: [{ name: 'api' }] }] });
  assert.deepEqual(spec.parentRefs, [{ kind: 'Service', name: 'api' }]);
  const rule = spec.rules[0]!;
  assert.deepEqual(rule.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
  assert.deepEqual(rule.filters, []);
  assert.deepEqual(rule.backendRefs, [{ kind: 'Service', name: 'api', weight: 1 }]);
  const empty = validateConfig(httpRouteSpec, { parentRefs, rules: [{ matches: [] }, { matches: [{ headers: [{ name: 'x', value: 'y' }] }] }] });
  assert.deepEqual(empty.rules[0]!.matches[0]!.path, { type: 'PathPrefix', value: '/' }, 'an empty matches list matches everything');
  assert.deepEqual(empty.rules[1]!.matches[0]!.path, { type: 'PathPrefix', value: '/' });
  assert.equal(empty.rules[1]!.matches[0]!.headers[0]!.type, 'Exact');
});

test('HTTPRoute: a full rule is accepted, durations in ms and mirror fractions as percent', () => {
  const spec = validateConfig(httpRouteSpec, {
    parentRefs: [{ group: '', kind: 'Service', name: 'api', namespace: 'shop', port: 8080 }],
    hostnames: ['api.example.org'],
    rules: [
      {
        name: 'canary',
        matches: [{ path: { type: 'PathPrefix', value: '/v2/' }, method: 'GET', headers: [{ type: 'RegularExpression', name: 'X-User', value: 'a.*' }], queryParams: [{ name: 'debug', value: '1' }] }],
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Route', value: 'canary' }], add: [{ name: 'x-a', value: '1' }], remove: ['x-b'] } },
          { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['server'] } },
          { type: 'URLRewrite', urlRewrite: { hostname: 'api.internal', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } },
          { type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, fraction: { numerator: 1, denominator: 1000 } } },
        ],
        backendRefs: [
          { name: 'api', subset: { version: 'v1' }, weight: 90 },
          { name: 'api', subset: { version: 'v2' }, weight: 10 },
        ],
        timeouts: { request: '10s', backendRequest: '2s' },
        retry: { attempts: 3, codes: [502, 503], backoff: '100ms' },
      },
    ],
  });
  const rule = spec.rules[0]!;
  assert.deepEqual(rule.timeouts, { request: 10_000, backendRequest: 2_000 });
  assert.deepEqual(rule.retry, { attempts: 3, codes: [502, 503], backoff: 100 });
  const mirror = rule.filters.find((f) => f.type === 'RequestMirror');
  assert.ok(mirror?.type === 'RequestMirror');
  assert.equal(mirror.requestMirror.percent, 0.1);
  assert.equal(validateConfig(httpRouteSpec, { parentRefs, rules: [{ retry: {} }] }).rules[0]!.retry!.attempts, 1, 'GEP-1731 attempts: weft default 1');
  const redirect = validateConfig(httpRouteSpec, { parentRefs, rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }] }).rules[0]!.filters[0]!;
  assert.ok(redirect.type === 'RequestRedirect');
  assert.equal(redirect.requestRedirect.statusCode, 302);
});

test('HTTPRoute: parentRefs, rules and the unsupported Gateway API fields are refused with what to do', () => {
  expectProblems(httpRouteSpec, { parentRefs: [], rules: [] }, [
    ['parentRefs', /at least one parentRef/],
    ['rules', /at least one rule/],
  ]);
  expectProblems(httpRouteSpec, { parentRefs: [{ name: 'gw', kind: 'Gateway', group: 'gateway.networking.k8s.io' }], rules: [{ sessionPersistence: { sessionName: 'x' } }] }, [
    ['parentRefs.0.kind', /must be Service.*Gateways are not supported/],
    ['parentRefs.0.group', /core/],
    ['rules.0.sessionPersistence', /not supported by weft/],
  ]);
  expectProblems(httpRouteSpec, { parentRefs, rules: Array.from({ length: 65 }, () => ({})) }, [['rules', /at most 64 rules/]]);
  expectProblems(httpRouteSpec, { parentRefs, rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { name: 'x' } }, { type: 'CORS', cors: {} }, { type: 'Magic' }] }] }, [
    ['rules.0.filters.0', /ExtensionRef filters are not supported by weft/],
    ['rules.0.filters.1', /CORS filters are not supported by weft/],
    ['rules.0.filters.2.type', /filter type must be RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, RequestRedirect or RequestMirror/],
  ]);
  expectProblems(httpRouteSpec, { parentRefs, rules: [{ backendRefs: [{ name: 'a', kind: 'Pod', filters: [{ type: 'RequestHeaderModifier' }], weight: -1 }, { name: 'B' }, { name: 'c', filters: [] }] }] }, [
    ['rules.0.backendRefs.0.kind', /kind must be Service/],
    ['rules.0.backendRefs.0.filters', /per-backend filters are not supported/],
    ['rules.0.backendRefs.0.weight', /0-1000000/],
    ['rules.0.backendRefs.1.name', /DNS label/],
  ]);
  expectProblems(httpRouteSpec, { parentRefs, rules: [{ name: 'a' }, { name: 'a' }] }, [['rules.1.name', /rule name "a" is used twice/]]);
  expectProblems(httpRouteSpec, { parentRefs, rules: [{ bogus: 1 }] }, [['rules.0.bogus', /unknown field "bogus"; check its spelling against docs\/routing.md/]]);
});

test('HTTPRoute: every match problem in one go', () => {
  expectProblems(
    httpRouteSpec,
    {
      parentRefs,
      rules: [
        {
          matches: [
            { path: { type: 'Prefix', value: '/a' } },
            { path: { value: 'api' }, method: 'get' },
            { path: { type: 'Exact', value: '/a//b' } },
            { path: { type: 'Exact', value: '/a/../b' } },
            { path: { value: '/a?x=1' } },
            { path: { type: 'RegularExpression', value: '/a(' } },
            { path: { type: 'RegularExpression', value: '/(a+)+' } },
            {
              headers: [
                { name: 'x-a', value: '1' },
                { name: 'bad name', value: '1' },
                { type: 'RegularExpression', name: 'x-r', value: '(?=x)' },
              ],
              queryParams: [
                { name: 'q', value: '1' },
                { type: 'Prefix', name: 'p', value: '1' },
              ],
            },
          ],
        },
      ],
    },
    [
      ['rules.0.matches.0.path.type', /Exact, PathPrefix or RegularExpression/],
      ['rules.0.matches.1.path.value', /starts with \//],
      ['rules.0.matches.1.method', /upper-case HTTP method/],
      ['rules.0.matches.2.path.value', /cannot hold \/\//],
      ['rules.0.matches.3.path.value', /\/\.\.\//],
      ['rules.0.matches.4.path.value', /no \?, #/],
      ['rules.0.matches.5.path.value', /^invalid regular expression: unterminated group$/],
      ['rules.0.matches.6.path.value', /nested repetition/],
      ['rules.0.matches.7.headers.1.name', /header name is letters/],
      ['rules.0.matches.7.headers.2.value', /lookarounds/],
      ['rules.0.matches.7.queryParams.1.type', /Exact or RegularExpression/],
    ],
  );
  // Duplicates are checked once the entries themselves are valid.
  expectProblems(httpRouteSpec, { parentRefs, rules: [{ matches: [{ headers: [{ name: 'x-a', value: '1' }, { name: 'X-A', value: '2' }], queryParams: [{ name: 'q', value: '1' }, { name: 'q', value: '2' }] }] }] }, [
    ['rules.0.matches.0.headers.1.name', /header "x-a" is matched twice/],
    ['rules.0.matches.0.queryParams.1.name', /query parameter "q" is matched twice/],
  ]);
});

test('HTTPRoute: filter problems, and the rules that tie filters, matches and backends together', () => {
  expectProblems(
    httpRouteSpec,
    {
      parentRefs,
      rules: [
        {
          filters: [
            {
              type: 'RequestHeaderModifier',
              requestHeaderModifier: {
                set: [{ name: 'Host', value: 'x' }, { name: 'x-a', value: 'a\r\nb' }],
                add: [{ name: 'Transfer-Encoding', value: 'chunked' }],
                remove: ['x-forwarded-client-cert', 'connection', 'te', 'upgrade', 'keep-alive', 'proxy-connection', 'content-length'],
              },
            },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: {} },
            { type: 'RequestHeaderModifier' },
            { type: 'URLRewrite', urlRewrite: {} },
            { type: 'RequestRedirect', requestRedirect: { statusCode: 304, scheme: 'ftp', port: 0, hostname: 'Bad_Host:80' } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'm' }, percent: 10, fraction: { numerator: 3, denominator: 2 } } },
          ],
        },
      ],
    },
    [
      ['rules.0.filters.0.requestHeaderModifier.set.0.name', /use a URLRewrite filter with hostname/],
      ['rules.0.filters.0.requestHeaderModifier.set.1.value', /CR, LF or NUL/],
      ['rules.0.filters.0.requestHeaderModifier.add.0.name', /transfer-encoding is a connection or framing header/],
      ['rules.0.filters.0.requestHeaderModifier.remove.0', /x-forwarded-client-cert is set by weft/],
      ['rules.0.filters.0.requestHeaderModifier.remove.1', /connection is a connection or framing header/],
      ['rules.0.filters.0.requestHeaderModifier.remove.2', /te is a/],
      ['rules.0.filters.0.requestHeaderModifier.remove.3', /upgrade is a/],
      ['rules.0.filters.0.requestHeaderModifier.remove.4', /keep-alive is a/],
      ['rules.0.filters.0.requestHeaderModifier.remove.5', /proxy-connection is a/],
      ['rules.0.filters.0.requestHeaderModifier.remove.6', /content-length is a/],
      ['rules.0.filters.1.responseHeaderModifier', /at least one header to set, add or remove/],
      ['rules.0.filters.2.requestHeaderModifier', /missing required field "requestHeaderModifier"/],
      ['rules.0.filters.3.urlRewrite', /give hostname, path or both/],
      ['rules.0.filters.4.requestRedirect.statusCode', /301, 302, 303, 307 or 308/],
      ['rules.0.filters.4.requestRedirect.scheme', /http or https/],
      ['rules.0.filters.4.requestRedirect.port', /1-65535/],
      ['rules.0.filters.4.requestRedirect.hostname', /lowercase DNS labels/],
      ['rules.0.filters.5.requestMirror.fraction.numerator', /must not exceed denominator/],
      ['rules.0.filters.5.requestMirror', /percent or fraction, not both/],
    ],
  );
  expectProblems(
    httpRouteSpec,
    {
      parentRefs,
      rules: [
        {
          matches: [{ path: { type: 'Exact', value: '/a' } }],
          filters: [
            { type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } },
            { type: 'URLRewrite', urlRewrite: { hostname: 'b' } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'm1' }, percent: 10, fraction: { numerator: 1 } } },
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'm2' } } },
          ],
          backendRefs: [{ name: 'a' }],
        },
        {
          matches: [{ path: { value: '/a' } }, { path: { value: '/b' } }],
          filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/c' } } }],
        },
        { filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: 'x' } } }, { type: 'URLRewrite', urlRewrite: { hostname: 'x' } }] },
        { timeouts: { request: '1s', backendRequest: '2s' }, retry: { attempts: 11, codes: [404], backoff: 'soon' } },
      ],
    },
    [
      ['rules.0.filters.1', /cannot both redirect \(RequestRedirect\) and rewrite \(URLRewrite\)/],
      ['rules.0.backendRefs', /answers the redirect itself: remove its backendRefs/],
      ['rules.0.filters.0.requestRedirect.path', /exactly one match, with a PathPrefix path/],
      ['rules.0.filters.2.requestMirror', /percent or fraction, not both/],
      ['rules.0.filters.3.type', /one backend per rule: keep one RequestMirror/],
      ['rules.1.filters.0.urlRewrite.path', /exactly one match, with a PathPrefix path/],
      ['rules.2.filters.0.urlRewrite.path.replaceFullPath', /starts with \//],
      ['rules.2.filters.1.type', /only one URLRewrite filter per rule/],
      ['rules.3.timeouts.backendRequest', /must not be longer than request/],
      ['rules.3.retry.attempts', /0-10/],
      ['rules.3.retry.codes.0', /500-599/],
      ['rules.3.retry.backoff', /not a duration/],
    ],
  );
  validateConfig(httpRouteSpec, { parentRefs, rules: [{ timeouts: { request: '0s', backendRequest: '2s' } }] });
  validateConfig(httpRouteSpec, { parentRefs, rules: [{ filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '' } } }] }] });
});

test('GRPCRoute: matches, filters and gRPC retry codes', () => {
  const spec = validateConfig(grpcRouteSpec, {
    parentRefs,
    rules: [
      {
        matches: [{ method: { service: 'shop.v1.Cart', method: 'Get' } }, { method: { type: 'RegularExpression', method: 'Get.*' }, headers: [{ name: 'x-v', value: '2' }] }],
        filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow' }, percent: 5 } }],
        backendRefs: [{ name: 'cart' }],
        timeouts: { request: '2s' },
        retry: { attempts: 2, codes: ['UNAVAILABLE', 'resource-exhausted', 4] },
      },
      {},
    ],
  });
  assert.deepEqual(spec.rules[0]!.retry!.codes, [14, 8, 4]);
  assert.equal(spec.rules[0]!.matches[0]!.method!.type, 'Exact');
  assert.deepEqual(spec.rules[1]!.matches, [{ headers: [] }], 'no matches: every call');
  expectProblems(
    grpcRouteSpec,
    {
      parentRefs,
      rules: [
        {
          matches: [{ method: {} }, { method: { service: 'shop/Cart', method: 'Get-It' } }, { method: { type: 'RegularExpression', service: '(' } }],
          filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'x' } }, { type: 'ExtensionRef' }],
          retry: { codes: ['OK', 'NOPE', 17, 0] },
          sessionPersistence: {},
        },
      ],
    },
    [
      ['rules.0.matches.0.method', /give service, method or both/],
      ['rules.0.matches.1.method.service', /dotted name/],
      ['rules.0.matches.1.method.method', /letters, digits and _/],
      ['rules.0.matches.2.method.service', /invalid regular expression/],
      ['rules.0.filters.0.type', /GRPCRoute filter type must be RequestHeaderModifier, ResponseHeaderModifier or RequestMirror/],
      ['rules.0.filters.1', /ExtensionRef filters are not supported/],
      ['rules.0.retry.codes.0', /OK \(0\) is a success/],
      ['rules.0.retry.codes.1', /not a gRPC status/],
      ['rules.0.retry.codes.2', /not a gRPC status/],
      ['rules.0.retry.codes.3', /OK \(0\) is a success/],
      ['rules.0.sessionPersistence', /not supported by weft/],
    ],
  );
});

test('TCPRoute: one rule of weighted backendRefs', () => {
  const spec = validateConfig(tcpRouteSpec, { parentRefs, rules: [{ backendRefs: [{ name: 'db', weight: 3 }, { name: 'db-next' }] }] });
  assert.deepEqual(spec.rules[0]!.backendRefs.map((r) => r.weight), [3, 1]);
  expectProblems(tcpRouteSpec, { parentRefs, hostnames: ['x'], rules: [{ backendRefs: [{ name: 'a' }] }, { backendRefs: [{ name: 'a' }] }] }, [
    ['hostnames', /unknown field/],
    ['rules', /a TCPRoute has one rule/],
  ]);
  expectProblems(tcpRouteSpec, { parentRefs, rules: [{ backendRefs: [] }] }, [['rules.0.backendRefs', /at least one backendRef/]]);
  expectProblems(tcpRouteSpec, { parentRefs, rules: [{ matches: [], backendRefs: [{ name: 'a' }] }] }, [['rules.0.matches', /unknown field/]]);
});

test('static routes: kinds, unique names, TCPRoute alone', () => {
  const routes = validateConfig(staticRoutesSchema, [
    { kind: 'HTTPRoute', name: 'web', rules: [{ backendRefs: [{ name: 'api' }] }] },
    { kind: 'GRPCRoute', name: 'web', rules: [{}] },
  ]);
  assert.deepEqual(routes.map((r) => r.kind), ['HTTPRoute', 'GRPCRoute']);
  expectProblems(staticRoutesSchema, [{ kind: 'UDPRoute', name: 'x', rules: [] }, { kind: 'HTTPRoute', name: 'x', parentRefs, rules: [{}] }], [
    ['0.kind', /HTTPRoute, GRPCRoute or TCPRoute/],
    ['1.parentRefs', /unknown field/],
  ]);
  expectProblems(staticRoutesSchema, [{ kind: 'HTTPRoute', name: 'x', rules: [{}] }, { kind: 'HTTPRoute', name: 'x', rules: [{}] }], [['1.name', /HTTPRoute x is listed twice/]]);
  expectProblems(staticRoutesSchema, [{ kind: 'HTTPRoute', name: 'x', rules: [{}] }, { kind: 'TCPRoute', name: 'y', rules: [{ backendRefs: [{ name: 'a' }] }] }], [['1.kind', /cannot sit with HTTPRoute or GRPCRoute/]]);
  expectProblems(staticRoutesSchema, [{ kind: 'TCPRoute', name: 'x', rules: [{ backendRefs: [{ name: 'a' }] }] }, { kind: 'TCPRoute', name: 'y', rules: [{ backendRefs: [{ name: 'a' }] }] }], [['1.kind', /one TCPRoute/]]);
});

test('regexes: syntax, lookarounds, backreferences and nested repetition are refused', () => {
  for (const ok of ['/api/[0-9]+', '/a(b|c)*/d', '(?:x+y)?', '[(?=]', '\\(a+\\)+', 'a{2}', '(ab){3}', '(a+)?', '/[^/]+/x', '[\\]+]+']) {
    assert.equal(regexProblem(ok), null, ok);
  }
  const refused: [string, RegExp][] = [
    ['(', /invalid regular expression/],
    ['a)|(b', /invalid regular expression/],
    ['(?=a)', /lookarounds/],
    ['(?<!a)b', /lookarounds/],
    ['(a)\\1', /backreferences/],
    ['(?<n>a)\\k<n>', /backreferences/],
    ['(a+)+', /nested repetition/],
    ['(a*)*', /nested repetition/],
    ['(?:x+y*){2,}', /nested repetition/],
    ['((a+)b)*', /nested repetition/],
    ['(a{1,5})+', /nested repetition/],
  ];
  for (const [source, message] of refused) assert.match(regexProblem(source) ?? 'null', message, source);
});

test('gRPC status names and numbers', () => {
  assert.equal(GRPC_STATUS.UNAVAILABLE, 14);
  assert.equal(GRPC_STATUS.UNIMPLEMENTED, 12);
  assert.equal(Object.keys(GRPC_STATUS).length, 17);
  assert.equal(parseGrpcRetryCode('DEADLINE_EXCEEDED'), 4);
  assert.equal(parseGrpcRetryCode('deadline-exceeded'), 4);
  assert.equal(parseGrpcRetryCode(16), 16);
  assert.match(String(parseGrpcRetryCode(1.5)), /not a gRPC status/);
  assert.match(String(parseGrpcRetryCode('toString')), /not a gRPC status/);
});

test('every YAML example of docs/routing.md is valid', () => {
  const md = readFileSync(new URL('../../../docs/routing.md', import.meta.url), 'utf8');
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1]!) as Record<string, unknown>);
  const specs = { HTTPRoute: httpRouteSpec, GRPCRoute: grpcRouteSpec, TCPRoute: tcpRouteSpec } as const;
  let checked = 0;
  for (const doc of blocks) {
    if (typeof doc['kind'] === 'string') {
      validateConfig(specs[doc['kind'] as keyof typeof specs], doc['spec'], ROUTE_DOCS);
      checked++;
    } else {
      for (const upstream of doc['upstreams'] as { routes: unknown }[]) validateConfig(staticRoutesSchema, upstream.routes, ROUTE_DOCS);
      checked++;
    }
  }
  assert.ok(checked >= 10, `only ${checked} examples found`);
});
