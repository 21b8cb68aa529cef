import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../../src/errors.js';
import {
  parseServiceSpiffeId,
  parseSpiffeId,
  serviceSpiffeId,
  validateTrustDomain,
} from '../../src/pki/spiffe.js';

function rejects(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isWeftError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

test('parseSpiffeId accepts valid IDs', () => {
  assert.deepEqual(parseSpiffeId('spiffe://example.org'), { trustDomain: 'example.org', path: '' });
  assert.deepEqual(parseSpiffeId('spiffe://example.org/ns/default/svc/web'), {
    trustDomain: 'example.org',
    path: '/ns/default/svc/web',
  });
  assert.deepEqual(parseSpiffeId('spiffe://a-b_c.9/Upper.Case-ok_1/x'), {
    trustDomain: 'a-b_c.9',
    path: '/Upper.Case-ok_1/x',
  });
  // Segments that merely contain dots are fine.
  assert.equal(parseSpiffeId('spiffe://td/.../a.b/..c').path, '/.../a.b/..c');
});

test('parseSpiffeId accepts exactly 2048 bytes and rejects 2049', () => {
  const prefix = 'spiffe://example.org/';
  const ok = prefix + 'a'.repeat(2048 - prefix.length);
  assert.equal(Buffer.byteLength(ok), 2048);
  assert.equal(parseSpiffeId(ok).trustDomain, 'example.org');
  rejects(() => parseSpiffeId(`${ok}b`), 'WEFT_E_SPIFFE_ID', /longer than 2048 bytes/);
});

test('parseSpiffeId rejects malformed IDs, naming the rule', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['https://example.org/web', /must start with "spiffe:\/\/"/],
    ['example.org/web', /must start with "spiffe:\/\/"/],
    ['SPIFFE://example.org/web', /scheme must be lowercase/],
    ['Spiffe://example.org/web', /scheme must be lowercase/],
    ['spiffe://Example.org/web', /trust domain must be lowercase; write "example\.org"/],
    ['spiffe://example.org:8443/web', /port is not allowed/],
    ['spiffe://user@example.org/web', /userinfo/],
    ['spiffe://user:pw@example.org/web', /userinfo/],
    ['spiffe://', /trust domain is empty/],
    ['spiffe:///ns/default', /trust domain is empty/],
    ['spiffe://exa$mple.org/web', /trust domain contains the character "\$"/],
    ['spiffe://example.org//web', /must not be empty \("\/\/"\)/],
    ['spiffe://example.org/ns//svc', /must not be empty/],
    ['spiffe://example.org/', /trailing slash/],
    ['spiffe://example.org/web/', /trailing slash/],
    ['spiffe://example.org/a/../b', /must not be "\." or "\.\."; found "\.\."/],
    ['spiffe://example.org/a/./b', /found "\."/],
    ['spiffe://example.org/..', /found "\.\."/],
    ['spiffe://example.org/web?x=1', /query/],
    ['spiffe://example.org/web#frag', /fragment/],
    ['spiffe://example.org/we%62', /percent-encoding/],
    ['spiffe://example.org/a b', /character U\+0020/],
    ['spiffe://example.org/caf\u00e9', /character U\+00E9/],
    ['spiffe://example.org/a:b', /character ":"/],
  ];
  for (const [input, message] of cases) {
    rejects(() => parseSpiffeId(input), 'WEFT_E_SPIFFE_ID', message);
  }
});

test('parseSpiffeId quotes the offending ID in the message', () => {
  rejects(() => parseSpiffeId('spiffe://example.org/web/'), 'WEFT_E_SPIFFE_ID', /^"spiffe:\/\/example\.org\/web\/" is not a valid SPIFFE ID/);
});

test('validateTrustDomain', () => {
  validateTrustDomain('example.org');
  validateTrustDomain('prod_eu-1.corp');
  rejects(() => validateTrustDomain(''), 'WEFT_E_TRUST_DOMAIN', /empty/);
  rejects(() => validateTrustDomain('Example.org'), 'WEFT_E_TRUST_DOMAIN', /lowercase/);
  rejects(() => validateTrustDomain('example.org:443'), 'WEFT_E_TRUST_DOMAIN', /port/);
  rejects(() => validateTrustDomain('spiffe://example.org'), 'WEFT_E_TRUST_DOMAIN', /without "spiffe:\/\/"/);
  rejects(() => validateTrustDomain('example.org/x'), 'WEFT_E_TRUST_DOMAIN', /character "\/"/);
});

test('serviceSpiffeId builds and validates spiffe://TD/ns/NS/svc/NAME', () => {
  assert.equal(serviceSpiffeId('example.org', 'default', 'web'), 'spiffe://example.org/ns/default/svc/web');
  assert.equal(serviceSpiffeId('td', 'pay-ments', 'api_v2.1'), 'spiffe://td/ns/pay-ments/svc/api_v2.1');
  rejects(() => serviceSpiffeId('Example.org', 'default', 'web'), 'WEFT_E_TRUST_DOMAIN', /lowercase/);
  rejects(() => serviceSpiffeId('example.org', '', 'web'), 'WEFT_E_SPIFFE_ID', /invalid namespace "".*empty/);
  rejects(() => serviceSpiffeId('example.org', 'default', 'a/b'), 'WEFT_E_SPIFFE_ID', /invalid service "a\/b"/);
  rejects(() => serviceSpiffeId('example.org', '..', 'web'), 'WEFT_E_SPIFFE_ID', /invalid namespace/);
});

test('parseServiceSpiffeId', () => {
  assert.deepEqual(parseServiceSpiffeId('spiffe://example.org/ns/default/svc/web'), {
    trustDomain: 'example.org',
    namespace: 'default',
    service: 'web',
  });
  for (const id of [
    'spiffe://example.org',
    'spiffe://example.org/ns/default',
    'spiffe://example.org/svc/web/ns/default',
    'spiffe://example.org/ns/default/svc/web/extra',
    'spiffe://example.org/workload/web',
  ]) {
    rejects(() => parseServiceSpiffeId(id), 'WEFT_E_SPIFFE_ID', /not a weft service ID: expected spiffe:\/\/example\.org\/ns\/NAMESPACE\/svc\/SERVICE/);
  }
  rejects(() => parseServiceSpiffeId('spiffe://example.org/ns/default/svc/web/'), 'WEFT_E_SPIFFE_ID', /trailing slash/);
});
