import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downstreamResponseHeaders, formatXfcc, framingProblem, isHopByHop, upstreamRequestHeaders } from '../../src/proxy/http/headers.js';
import { spiffeIdFromSan } from '../../src/proxy/tls.js';
import { admitted } from '../../src/proxy/connection-info.js';

const inbound = (xfcc: string | null, proto: 'http' | 'https' = 'https') => ({ inbound: true, proto, clientAddress: '198.18.0.1', xfcc });
const outbound = { inbound: false, proto: 'http' as const, clientAddress: '127.0.0.1', xfcc: null };

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

test('hop-by-hop headers and those named in Connection are not forwarded', () => {
  const out = pairs(
    upstreamRequestHeaders(
      ['Host', 'api', 'Connection', 'keep-alive, X-Secret-Hop', 'Keep-Alive', 'timeout=5', 'X-Secret-Hop', '1', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Authorization', 'Basic x', 'TE', 'gzip', 'Accept', '*/*'],
      outbound,
    ),
  );
  assert.deepEqual(out, [['Host', 'api'], ['Accept', '*/*']]);
});

test('TE: trailers survives (gRPC needs it)', () => {
  const out = pairs(upstreamRequestHeaders(['TE', 'trailers', 'Host', 'x'], outbound));
  assert.deepEqual(out, [['TE', 'trailers'], ['Host', 'x']]);
});

test('inbound: caller-sent x-forwarded-client-cert is replaced by the verified identity', () => {
  const xfcc = formatXfcc('spiffe://example.org/ns/default/svc/api', 'ab12', 'spiffe://example.org/ns/default/svc/web');
  const out = upstreamRequestHeaders(['x-forwarded-client-cert', 'By=evil;URI=spiffe://evil/x', 'Host', 'api'], inbound(xfcc));
  const values = pairs(out).filter(([n]) => n.toLowerCase() === 'x-forwarded-client-cert').map(([, v]) => v);
  assert.deepEqual(values, ['By=spiffe://example.org/ns/default/svc/api;Hash=ab12;URI=spiffe://example.org/ns/default/svc/web']);
});

test('inbound: a plaintext caller never gets x-forwarded-client-cert through', () => {
  const out = pairs(upstreamRequestHeaders(['X-Forwarded-Client-Cert', 'URI=spiffe://evil/ns/a/svc/b', 'Host', 'api'], inbound(null, 'http')));
  assert.equal(out.find(([n]) => n.toLowerCase() === 'x-forwarded-client-cert'), undefined);
  assert.deepEqual(out.find(([n]) => n === 'x-forwarded-proto'), ['x-forwarded-proto', 'http']);
});

test('inbound: x-forwarded-for is appended, x-forwarded-proto is set by the sidecar', () => {
  const out = pairs(upstreamRequestHeaders(['X-Forwarded-For', '203.0.113.9', 'X-Forwarded-Proto', 'ftp'], inbound(null)));
  assert.deepEqual(out, [['x-forwarded-for', '203.0.113.9, 198.18.0.1'], ['x-forwarded-proto', 'https']]);
});

test('outbound leaves forwarding headers alone', () => {
  const out = pairs(upstreamRequestHeaders(['X-Forwarded-For', '203.0.113.9'], outbound));
  assert.deepEqual(out, [['X-Forwarded-For', '203.0.113.9']]);
});

test('ambiguous framing is detected', () => {
  assert.equal(framingProblem(['Content-Length', '5', 'Host', 'x']), null);
  assert.equal(framingProblem(['Transfer-Encoding', 'chunked']), null);
  assert.match(framingProblem(['Content-Length', '5', 'Transfer-Encoding', 'chunked']) ?? '', /both/);
  assert.match(framingProblem(['Content-Length', '5', 'content-length', '6']) ?? '', /several/);
  assert.match(framingProblem(['Content_Length', '5']) ?? '', /ambiguous spelling/);
  assert.match(framingProblem(['transfer_encoding', 'chunked']) ?? '', /ambiguous spelling/);
});

test('response hop-by-hop headers are removed, the rest pass byte for byte', () => {
  const raw = ['Connection', 'close, x-internal', 'X-Internal', '1', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain; charset=\u00e9'].map((v) => Buffer.from(v, 'latin1'));
  assert.deepEqual(downstreamResponseHeaders(raw), ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Type', 'text/plain; charset=\u00e9']);
  assert.ok(isHopByHop('upgrade'));
  assert.ok(!isHopByHop('content-type'));
});

test('the SPIFFE ID is the single spiffe URI SAN of the peer certificate', () => {
  assert.equal(spiffeIdFromSan('URI:spiffe://example.org/ns/default/svc/web'), 'spiffe://example.org/ns/default/svc/web');
  assert.equal(spiffeIdFromSan('DNS:web.local, URI:spiffe://example.org/ns/default/svc/web'), 'spiffe://example.org/ns/default/svc/web');
  assert.equal(spiffeIdFromSan('DNS:web.local'), null);
  assert.equal(spiffeIdFromSan('URI:spiffe://a.org/x, URI:spiffe://b.org/y'), null, 'two SPIFFE IDs: not an SVID');
  // A SAN carrying ", URI:spiffe://…" is printed quoted by Node; it must not yield the smuggled ID.
  assert.equal(spiffeIdFromSan('URI:"spiffe://other.org/x, URI:spiffe://example.org/ns/default/svc/api, DNS:y"'), null);
});

test('admission: allow-list and strict mode are checked against the current rules', () => {
  const conn = (spiffeId: string | null, tls: boolean) => ({
    peer: { spiffeId, certHash: null },
    tls,
    hop: { direction: 'inbound' as const, service: 'api', peer: spiffeId ?? 'unknown', tls: tls ? ('true' as const) : ('false' as const) },
    xfcc: null,
  });
  const web = 'spiffe://example.org/ns/default/svc/web';
  assert.ok(admitted({ allow: null, requireTls: false }, conn(null, false)), 'permissive, no allow-list: plaintext admitted');
  assert.ok(!admitted({ allow: null, requireTls: true }, conn(null, false)), 'strict: plaintext refused');
  assert.ok(admitted({ allow: new Set([web]), requireTls: true }, conn(web, true)));
  assert.ok(!admitted({ allow: new Set([web]), requireTls: true }, conn('spiffe://example.org/ns/default/svc/billing', true)));
  assert.ok(!admitted({ allow: new Set([web]), requireTls: false }, conn(null, false)), 'plaintext callers have no identity');
});
