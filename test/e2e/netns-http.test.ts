// End to end across two network namespaces: "web" on host A calls "api" on host B through
// web's outbound listener; the hop between the hosts is mTLS. A packet capture on B's link
// proves that nothing readable crosses it, and a plaintext control proves the check can fail.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { makeCa, startSidecar, tempDir } from '../helpers/weft.js';
import { capture, inHost, marker, packetsBetweenHosts, requireNetns, spawnInHost, twoHosts, type Host } from '../helpers/netns.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';
const API_ID = 'spiffe://example.org/ns/default/svc/api';

/**
 * The api app: answers every request with JSON carrying its own marker, the request body,
 * the x-marker header and the x-forwarded-client-cert header it received; prints one
 * "request" line per request so a test can tell whether anything reached it.
 */
const APP = `
const http = require('node:http');
const [host, port, marker] = process.argv.slice(1);
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    console.log('request');
    const body = JSON.stringify({
      marker,
      method: req.method,
      body: Buffer.concat(chunks).toString(),
      header: req.headers['x-marker'] ?? null,
      xfcc: req.headers['x-forwarded-client-cert'] ?? null,
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
}).listen(Number(port), host, () => console.log('listening'));
`;

interface AppReply {
  marker: string;
  method: string;
  body: string;
  header: string | null;
  xfcc: string | null;
}

/** Starts the api app inside `host` and waits (bounded) until it listens. */
async function startApp(t: TestContext, host: Host, listen: string, port: number, responseMarker: string): Promise<{ child: ChildProcess; requests: () => number }> {
  const child = spawnInHost(t, host, process.execPath, ['-e', APP, '--', listen, String(port), responseMarker]);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!out.includes('listening') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!out.includes('listening')) throw new Error(`api app did not start on ${listen}:${port}: ${err}`);
  return { child, requests: () => out.split('\n').filter((l) => l === 'request').length };
}

/** POSTs `body` with an x-marker header using curl inside `host`; returns status, headers and body. */
async function curlPost(host: Host, url: string, headerMarker: string, body: string): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const { stdout } = await inHost(host, 'curl', [
    '-sS', '--max-time', '10', '-D', '-', '-X', 'POST',
    '-H', 'Expect:', '-H', 'content-type: text/plain', '-H', `x-marker: ${headerMarker}`,
    '--data-binary', body, url,
  ]);
  const split = stdout.indexOf('\r\n\r\n');
  assert.ok(split > 0, `curl output has no header block: ${stdout}`);
  const [statusLine, ...headerLines] = stdout.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine!)?.[1]);
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status, headers, body: stdout.slice(split + 4) };
}

test('web on host A calls api on host B through its outbound listener; the link carries only mTLS', async (t) => {
  if (!(await requireNetns(t))) return;
  const dir = await tempDir(t);
  const ca = await makeCa(dir, 'example.org');
  const { a, b } = await twoHosts(t);

  const requestBodyMarker = marker('BODY');
  const requestHeaderMarker = marker('HDR');
  const responseMarker = marker('RESP');
  await startApp(t, b, '127.0.0.1', 8080, responseMarker);
  await startSidecar(t, ['--service', 'api', '--issuer', ca, '--inbound', `${b.ip}:8443`, '--app', '127.0.0.1:8080', '--admin', '127.0.0.1:0'], { prefix: b.exec });
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:9001=${b.ip}:8443`, '--admin', '127.0.0.1:0'], { prefix: a.exec });
  assert.equal(web.listeners['upstream api'], '127.0.0.1:9001');

  let reply: Awaited<ReturnType<typeof curlPost>> | undefined;
  const text = await capture(t, b, join(dir, 'mtls.pcap'), 'tcp port 8443', async () => {
    reply = await curlPost(a, 'http://127.0.0.1:9001/', requestHeaderMarker, `hello ${requestBodyMarker}`);
  });

  assert.ok(reply);
  assert.equal(reply.status, 200, `body: ${reply.body}`);
  const got = JSON.parse(reply.body) as AppReply;
  // The markers really travelled: the app saw the request ones, the caller got the response one.
  assert.equal(got.marker, responseMarker);
  assert.equal(got.method, 'POST');
  assert.equal(got.body, `hello ${requestBodyMarker}`);
  assert.equal(got.header, requestHeaderMarker);
  assert.ok(got.xfcc, 'the api app received no x-forwarded-client-cert');
  assert.ok(got.xfcc.includes(`URI=${WEB_ID}`), `x-forwarded-client-cert: ${got.xfcc}`);
  assert.ok(got.xfcc.includes(`By=${API_ID}`), `x-forwarded-client-cert: ${got.xfcc}`);

  // The capture saw the exchange between the hosts, yet none of it is readable.
  assert.ok(packetsBetweenHosts(text, 8443) >= 6, `too few packets captured on port 8443:\n${text.slice(0, 2000)}`);
  for (const m of [requestBodyMarker, requestHeaderMarker, responseMarker]) {
    assert.ok(!text.includes(m), `marker ${m} crossed the link in the clear`);
  }
  assert.ok(!text.includes('x-marker'), 'a request header name crossed the link in the clear');
  assert.ok(!text.includes('HTTP/1.1'), 'HTTP framing crossed the link in the clear');
});

test('plaintext control: the same request sent directly across the link is readable in the capture', async (t) => {
  if (!(await requireNetns(t))) return;
  const dir = await tempDir(t);
  const { a, b } = await twoHosts(t);

  const requestBodyMarker = marker('BODY');
  const requestHeaderMarker = marker('HDR');
  const responseMarker = marker('RESP');
  await startApp(t, b, b.ip, 8080, responseMarker);

  let reply: Awaited<ReturnType<typeof curlPost>> | undefined;
  const text = await capture(t, b, join(dir, 'plain.pcap'), 'tcp port 8080', async () => {
    reply = await curlPost(a, `http://${b.ip}:8080/`, requestHeaderMarker, `hello ${requestBodyMarker}`);
  });

  assert.ok(reply);
  assert.equal(reply.status, 200);
  const got = JSON.parse(reply.body) as AppReply;
  assert.equal(got.marker, responseMarker);
  assert.equal(got.xfcc, null);
  assert.ok(packetsBetweenHosts(text, 8080) >= 6, `too few packets captured on port 8080:\n${text.slice(0, 2000)}`);
  for (const m of [requestBodyMarker, requestHeaderMarker, responseMarker]) {
    assert.ok(text.includes(m), `marker ${m} should be visible in a plaintext capture`);
  }
});

test('an upstream endpoint presenting another identity is refused with 503 WEFT_E_PEER_IDENTITY', async (t) => {
  if (!(await requireNetns(t))) return;
  const dir = await tempDir(t);
  const ca = await makeCa(dir, 'example.org');
  const { a, b } = await twoHosts(t);

  const app = await startApp(t, b, '127.0.0.1', 8080, marker('RESP'));
  // "billing" is a valid member of the trust domain, but it is not "api".
  await startSidecar(t, ['--service', 'billing', '--issuer', ca, '--inbound', `${b.ip}:8444`, '--app', '127.0.0.1:8080', '--admin', '127.0.0.1:0'], { prefix: b.exec });
  await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:9002=${b.ip}:8444`, '--admin', '127.0.0.1:0'], { prefix: a.exec });

  const bodyMarker = marker('BODY');
  const reply = await curlPost(a, 'http://127.0.0.1:9002/', marker('HDR'), bodyMarker);
  assert.equal(reply.status, 503, `body: ${reply.body}`);
  assert.equal(reply.headers.get('weft-error'), 'WEFT_E_PEER_IDENTITY');
  assert.ok(!reply.body.includes(bodyMarker));
  assert.ok(reply.body.includes('spiffe://example.org/ns/default/svc/billing'), `the reply should name the identity presented: ${reply.body}`);
  // Nothing was forwarded to the wrong peer.
  assert.equal(app.requests(), 0);
});
