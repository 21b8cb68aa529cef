import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downstreamResponseHead, formatXfcc, isHopByHop, upstreamRequestHead } from '../../src/proxy/http1/headers.js';
import { parseRequestHead, parseResponseHead } from '../../src/proxy/http1/head.js';
import { spiffeIdFromSan } from '../../src/proxy/tls.js';
import { admitted } from '../../src/proxy/connection-info.js';

const inbound = (xfcc: string | null, proto: 'http' | 'https' = 'https') => ({ inbound: true, proto, clientAddress: '198.18.0.1', xfcc });
const outbound = { inbound: false, proto: 'http' as const, clientAddress: '127.0.0.1', xfcc: null };
const limits = { maxHeaders: 100 };

/** A request head from header pairs, through the real parser. */
function request(pairs: string[], line = 'GET / HTTP/1.1') {
  let text = line;
  for (let i = 0; i < pairs.length; i += 2) text += `\r\n${pairs[i]}: ${pairs[i + 1]}`;
  return parseRequestHead(text, limits);
}

/** The header lines of a serialised head, as [name, value] pairs (request or status line dropped). */
function lines(head: string): [string, string][] {
  assert.ok(head.endsWith('\r\n\r\n'), 'a head ends with an empty line');
  return head
    .slice(0, -4)
    .split('\r\n')
    .slice(1)
    .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)] as [string, string]);
}

test('hop-by-hop headers and those named in Connection are not forwarded', () => {
  const head = request(['Host', 'api', 'Connection', 'keep-alive, X-Secret-Hop', 'Keep-Alive', 'timeout=5', 'X-Secret-Hop', '1', 'Upgrade', 'h2c', 'Proxy-Authorization', 'Basic x', 'TE', 'gzip', 'Accept', '*/*']);
  const out = upstreamRequestHead(head, false, outbound);
  assert.ok(out.startsWith('GET / HTTP/1.1\r\n'));
  assert.deepEqual(lines(out), [['Host', 'api'], ['Accept', '*/*']]);
});

test('a chunked request keeps one canonical Transfer-Encoding; an upgrade asks for it', () => {
  const chunked = upstreamRequestHead(request(['Host', 'x', 'Transfer-Encoding', 'Chunked']), false, outbound);
  assert.deepEqual(lines(chunked), [['Host', 'x'], ['transfer-encoding', 'chunked']]);
  const ws = upstreamRequestHead(request(['Host', 'x', 'Connection', 'Upgrade', 'Upgrade', 'websocket']), true, outbound);
  assert.deepEqual(lines(ws), [['Host', 'x'], ['connection', 'upgrade'], ['upgrade', 'websocket']]);
});

test('an HTTP/1.0 request keeps its version and asks the upstream to keep the connection', () => {
  const out = upstreamRequestHead(request(['Host', 'x'], 'GET /a?b=1 HTTP/1.0'), false, outbound);
  assert.ok(out.startsWith('GET /a?b=1 HTTP/1.0\r\n'));
  assert.deepEqual(lines(out), [['Host', 'x'], ['connection', 'keep-alive']]);
});

test('TE: trailers survives (gRPC needs it)', () => {
  assert.deepEqual(lines(upstreamRequestHead(request(['TE', 'trailers', 'Host', 'x']), false, outbound)), [['TE', 'trailers'], ['Host', 'x']]);
});

test('inbound: caller-sent x-forwarded-client-cert is replaced by the verified identity', () => {
  const xfcc = formatXfcc('spiffe://example.org/ns/default/svc/api', 'ab12', 'spiffe://example.org/ns/default/svc/web');
  const out = lines(upstreamRequestHead(request(['x-forwarded-client-cert', 'By=evil;URI=spiffe://evil/x', 'Host', 'api']), false, inbound(xfcc)));
  const values = out.filter(([n]) => n.toLowerCase() === 'x-forwarded-client-cert').map(([, v]) => v);
  assert.deepEqual(values, ['By=spiffe://example.org/ns/default/svc/api;Hash=ab12;URI=spiffe://example.org/ns/default/svc/web']);
});

test('inbound: a plaintext caller never gets x-forwarded-client-cert through', () => {
  const out = lines(upstreamRequestHead(request(['X-Forwarded-Client-Cert', 'URI=spiffe://evil/ns/a/svc/b', 'Host', 'api']), false, inbound(null, 'http')));
  assert.equal(out.find(([n]) => n.toLowerCase() === 'x-forwarded-client-cert'), undefined);
  assert.deepEqual(out.find(([n]) => n === 'x-forwarded-proto'), ['x-forwarded-proto', 'http']);
});

test('inbound: x-forwarded-for is appended, x-forwarded-proto is set by the sidecar', () => {
  const out = lines(upstreamRequestHead(request(['X-Forwarded-For', '203.0.113.9', 'X-Forwarded-Proto', 'ftp']), false, inbound(null)));
  assert.deepEqual(out, [['x-forwarded-for', '203.0.113.9, 198.18.0.1'], ['x-forwarded-proto', 'https']]);
});

test('outbound leaves forwarding headers alone', () => {
  assert.deepEqual(lines(upstreamRequestHead(request(['X-Forwarded-For', '203.0.113.9']), false, outbound)), [['X-Forwarded-For', '203.0.113.9']]);
});

test('response hop-by-hop headers are removed, the rest pass byte for byte, framing is set by the proxy', () => {
  const text = ['HTTP/1.1 200 Fine Thanks', 'Connection: close, x-internal', 'X-Internal: 1', 'Keep-Alive: timeout=5', 'Transfer-Encoding: chunked', 'Content-Length: 12', 'Set-Cookie: a=1', 'Set-Cookie: b=2', 'Content-Type: text/plain; charset=\u00e9'].join('\r\n');
  const head = parseResponseHead(text, limits);
  const out = downstreamResponseHead(head, { close: false, keepAlive10: false });
  assert.ok(out.startsWith('HTTP/1.1 200 Fine Thanks\r\n'));
  assert.deepEqual(lines(out), [['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['Content-Type', 'text/plain; charset=\u00e9'], ['transfer-encoding', 'chunked']]);
  const closing = downstreamResponseHead(parseResponseHead('HTTP/1.1 204 No Content', limits), { close: true, keepAlive10: false });
  assert.equal(closing, 'HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n');
  const old = downstreamResponseHead(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 2', limits), { close: false, keepAlive10: true });
  assert.equal(old, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nconnection: keep-alive\r\n\r\n');
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
    hop: { direction: 'inbound' as const, service: 'api', source_service: 'web', source_identity: spiffeId ?? 'unknown', destination_identity: 'spiffe://example.org/ns/default/svc/api', tls: tls ? ('true' as const) : ('false' as const) },
    xfcc: null,
    remoteAddress: null,
    callers: null,
  });
  const web = 'spiffe://example.org/ns/default/svc/web';
  assert.ok(admitted({ allow: null, requireTls: false, authz: null, strictDryRun: false }, conn(null, false)), 'permissive, no allow-list: plaintext admitted');
  assert.ok(!admitted({ allow: null, requireTls: true, authz: null, strictDryRun: false }, conn(null, false)), 'strict: plaintext refused');
  assert.ok(admitted({ allow: new Set([web]), requireTls: true, authz: null, strictDryRun: false }, conn(web, true)));
  assert.ok(!admitted({ allow: new Set([web]), requireTls: true, authz: null, strictDryRun: false }, conn('spiffe://example.org/ns/default/svc/billing', true)));
  assert.ok(!admitted({ allow: new Set([web]), requireTls: false, authz: null, strictDryRun: false }, conn(null, false)), 'plaintext callers have no identity');
});
