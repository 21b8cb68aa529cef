import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeaderEdit, applyHeaderEditToObject, compileHeaderEdit, type HeaderLines } from '../../src/proxy/route/header-edit.js';
import { replacePrefixMatch } from '../../src/proxy/route/rewrite.js';
import type { HeaderEdit } from '../../src/proxy/route/types.js';
import { router, view } from './route-lib.js';

test('ReplacePrefixMatch: the Gateway API table', () => {
  const cases: [path: string, prefix: string, replacement: string, expected: string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/foo/bar', '/', '/xyz', '/xyz/foo/bar'],
    ['/', '/', '/xyz', '/xyz/'],
    ['/', '/', '/', '/'],
  ];
  for (const [path, prefix, replacement, expected] of cases) {
    assert.equal(replacePrefixMatch(path, prefix, replacement), expected, `${path} ${prefix} → ${replacement}`);
  }
});

test('URLRewrite through the router: conformance cases for paths, and the hostname', () => {
  const prefixRule = (prefix: string, replacement: string) => ({
    matches: [{ path: { value: prefix } }],
    filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: replacement } } }],
  });
  const r = router([
    {
      name: 'rewrite',
      rules: [
        prefixRule('/prefix/one', '/one'),
        prefixRule('/strip-prefix', '/'),
        { matches: [{ path: { value: '/full/path/original' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/full-path-replacement' } } }] },
        { matches: [{ path: { value: '/host' } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'api.internal' } }] },
      ],
    },
  ]);
  const rewrite = (target: string) => {
    const req = view(target);
    return r.match(req)?.rewrite?.path(req);
  };
  assert.equal(rewrite('/prefix/one/two'), '/one/two');
  assert.equal(rewrite('/prefix/one'), '/one');
  assert.equal(rewrite('/prefix/one/'), '/one/');
  assert.equal(rewrite('/strip-prefix/three'), '/three');
  assert.equal(rewrite('/strip-prefix'), '/');
  assert.equal(rewrite('/strip-prefix/'), '/');
  assert.equal(rewrite('/full/path/original/x?y=1'), '/full-path-replacement', 'the query is kept by the caller');
  const host = r.match(view('/host'))!.rewrite!;
  assert.equal(host.hostname, 'api.internal');
  assert.equal(host.path(view('/host/a')), null, 'no path modifier: keep the path');
  assert.equal(r.match(view('/prefix/one'))!.rewrite!.hostname, null);
});

test('RequestRedirect: Location from the filter and the request', () => {
  const redirect = (config: Record<string, unknown>, match: Record<string, unknown> = {}) => {
    const r = router([{ name: 'r', rules: [{ matches: [{ path: { value: '/' }, ...match }], filters: [{ type: 'RequestRedirect', requestRedirect: config }] }] }]);
    const rule = r.match(view('/a'))!;
    assert.equal(rule.noBackends, true, 'a redirect rule has no backends');
    return rule.redirect!;
  };
  const req = view('/a/b?x=1&y=2');
  assert.equal(redirect({}).status, 302);
  assert.equal(redirect({ statusCode: 301 }).status, 301);
  assert.equal(redirect({ scheme: 'https' }).location(req, 'http', 'example.com'), 'https://example.com/a/b?x=1&y=2');
  assert.equal(redirect({ scheme: 'https' }).location(req, 'http', 'example.com:8080'), 'https://example.com/a/b?x=1&y=2', 'a scheme gives its own port');
  assert.equal(redirect({ scheme: 'http' }).location(view('/'), 'https', 'example.com:8443'), 'http://example.com/');
  assert.equal(redirect({ hostname: 'other.example' }).location(req, 'http', 'example.com:8080'), 'http://other.example:8080/a/b?x=1&y=2', 'the request port is kept');
  assert.equal(redirect({ hostname: 'other.example' }).location(req, 'https', 'example.com'), 'https://other.example/a/b?x=1&y=2');
  assert.equal(redirect({ port: 8443 }).location(req, 'http', 'example.com:8080'), 'http://example.com:8443/a/b?x=1&y=2');
  assert.equal(redirect({ scheme: 'https', port: 8443 }).location(req, 'http', 'example.com'), 'https://example.com:8443/a/b?x=1&y=2');
  assert.equal(redirect({ scheme: 'https', port: 443 }).location(req, 'http', 'example.com'), 'https://example.com/a/b?x=1&y=2');
  assert.equal(redirect({ port: 80 }).location(req, 'http', 'example.com:8080'), 'http://example.com/a/b?x=1&y=2', 'the default port is left out');
  assert.equal(redirect({ port: 80 }).location(req, 'https', 'example.com'), 'https://example.com:80/a/b?x=1&y=2');
  assert.equal(redirect({}).location(req, 'http', '[::1]:8080'), 'http://[::1]:8080/a/b?x=1&y=2');
  assert.equal(redirect({ scheme: 'https' }).location(req, 'http', '[::1]:8080'), 'https://[::1]/a/b?x=1&y=2');
  assert.equal(redirect({ scheme: 'https' }).location(req, 'http', '[::1]'), 'https://[::1]/a/b?x=1&y=2');
  assert.equal(redirect({ path: { type: 'ReplaceFullPath', replaceFullPath: '/moved' } }).location(req, 'http', 'h'), 'http://h/moved?x=1&y=2');
  const prefix = redirect({ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } }, { path: { value: '/a' } });
  assert.equal(prefix.location(view('/a/b'), 'http', 'h'), 'http://h/v2/b');
  assert.equal(prefix.location(view('/a'), 'http', 'h'), 'http://h/v2');
});

function lines(...pairs: [string, string][]): HeaderLines {
  return { names: pairs.map(([n]) => n), lower: pairs.map(([n]) => n.toLowerCase()), values: pairs.map(([, v]) => v) };
}

function edit(config: Parameters<typeof compileHeaderEdit>[0]): HeaderEdit {
  const compiled = compileHeaderEdit(config);
  assert.ok(compiled !== null);
  return compiled;
}

test('header edits on HTTP/1 lines: remove, then set, then add; arrays stay parallel', () => {
  const h = lines(['Host', 'a'], ['X-Old', '1'], ['Accept', '*/*'], ['x-old', '2'], ['X-Set', 'old'], ['X-SET', 'old2'], ['X-Add', 'first']);
  applyHeaderEdit(edit({ remove: ['X-OLD'], set: [{ name: 'X-Set', value: 'new' }, { name: 'X-New', value: 'n' }], add: [{ name: 'X-Add', value: 'second' }] }), h);
  assert.deepEqual(h.names, ['Host', 'Accept', 'X-Set', 'X-Add', 'x-new', 'x-add']);
  assert.deepEqual(h.lower, ['host', 'accept', 'x-set', 'x-add', 'x-new', 'x-add']);
  assert.deepEqual(h.values, ['a', '*/*', 'new', 'first', 'n', 'second']);
  const untouched = lines(['A', '1']);
  applyHeaderEdit(edit({ remove: ['b'] }), untouched);
  assert.deepEqual(untouched, lines(['A', '1']));
  const removeThenSet = lines(['X-A', '1']);
  applyHeaderEdit(edit({ remove: ['x-a'], set: [{ name: 'x-a', value: '2' }] }), removeThenSet);
  assert.deepEqual(removeThenSet.values, ['2'], 'set after remove adds the header back');
});

test('header edits on HTTP/2 objects: lower-case keys, add makes arrays, pseudo-headers untouched', () => {
  const old = ['a', 'b'];
  const h: Record<string, string | string[]> = { ':path': '/', ':authority': 'x', 'x-old': '1', 'x-set': 'old', 'x-add': 'first', 'x-many': old };
  applyHeaderEditToObject(edit({ remove: ['X-Old'], set: [{ name: 'X-Set', value: 'new' }], add: [{ name: 'x-add', value: 'second' }, { name: 'x-many', value: 'c' }, { name: 'x-fresh', value: 'f' }] }), h);
  assert.deepEqual(h, { ':path': '/', ':authority': 'x', 'x-set': 'new', 'x-add': ['first', 'second'], 'x-many': ['a', 'b', 'c'], 'x-fresh': 'f' });
  assert.deepEqual(old, ['a', 'b'], 'the previous array is not mutated');
  // The schema refuses such names; the appliers skip them anyway.
  const pseudo: HeaderEdit = { remove: [':path'], set: [[':authority', 'evil']], add: [[':method', 'X']] };
  const p: Record<string, string | string[]> = { ':path': '/', ':authority': 'x' };
  applyHeaderEditToObject(pseudo, p);
  assert.deepEqual(p, { ':path': '/', ':authority': 'x' });
});

test('header modifiers compile into the rule; an empty modifier is no edit', () => {
  assert.equal(compileHeaderEdit(undefined), null);
  assert.equal(compileHeaderEdit({ set: [], add: [], remove: [] }), null);
  const r = router([
    {
      name: 'r',
      rules: [
        {
          filters: [
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Route', value: 'r' }] } },
            { type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['Server'] } },
          ],
        },
      ],
    },
  ]);
  const rule = r.match(view('/'))!;
  assert.deepEqual(rule.requestHeaders, { remove: [], set: [['x-route', 'r']], add: [] });
  assert.deepEqual(rule.responseHeaders, { remove: ['server'], set: [], add: [] });
  assert.equal(rule.rewrite, null);
  assert.equal(rule.redirect, null);
  assert.equal(rule.mirror, null);
});
