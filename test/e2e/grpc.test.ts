/**
 * gRPC through two sidecars with real gRPC libraries: a @grpc/grpc-js server app behind
 * api's inbound sidecar, a @grpc/grpc-js client calling web's outbound listener (h2c),
 * and h2 over mTLS between the sidecars (ALPN h2). Unary and streaming calls, status codes
 * and trailing metadata, deadlines, a 4 MiB message; the hop between the sidecars is shown
 * to be one multiplexed TLS connection, and ALPN is checked with openssl s_client.
 * A raw node:http2 app shows what the sidecar itself does with grpc-timeout.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { connect as h2Connect, createServer as createH2Server, constants as h2, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { admin, makeCa, metricValue, runWeft, startSidecar, tempDir } from '../helpers/weft.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';
const SERVICE = '/weft.test.Echo';
const raw = (b: Buffer) => b;
const MESSAGE_LIMIT = 16 * 1024 * 1024;

/** The handlers' side: what the slow handler saw of its cancellation. */
interface AppState {
  slowCancelledAt: number | null;
  seenXfcc: string[];
}

/** A gRPC server app with unary, server-, client- and bidi-streaming methods on raw byte messages. */
async function grpcApp(t: TestContext): Promise<{ address: string; state: AppState }> {
  const state: AppState = { slowCancelledAt: null, seenXfcc: [] };
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MESSAGE_LIMIT, 'grpc.max_send_message_length': MESSAGE_LIMIT });
  const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
    path: `${SERVICE}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  });
  const definition = {
    Unary: method('Unary', false, false),
    Slow: method('Slow', false, false),
    List: method('List', false, true),
    Upload: method('Upload', true, false),
    Chat: method('Chat', true, true),
  };
  server.addService(definition, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      state.seenXfcc.push(String(call.metadata.get('x-forwarded-client-cert')[0] ?? ''));
      const text = call.request.subarray(0, 16).toString('latin1');
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer', 'from-the-app');
      trailer.set('x-blob-bin', Buffer.from([0, 1, 2, 255]));
      if (text.startsWith('notfound')) {
        callback({ code: grpc.status.NOT_FOUND, details: 'no such widget: größe 42%', metadata: trailer });
        return;
      }
      callback(null, call.request, trailer);
    },
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      call.on('cancelled', () => (state.slowCancelledAt = Date.now()));
    },
    List: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`item ${i}`));
      const trailer = new grpc.Metadata();
      trailer.set('x-count', String(n));
      call.end(trailer);
    },
    Upload: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const hash = createHash('sha256');
      let n = 0;
      call.on('data', (m: Buffer) => {
        hash.update(m);
        n++;
      });
      call.on('end', () => callback(null, Buffer.from(`${n} ${hash.digest('hex')}`)));
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(Buffer.from(m.toString().toUpperCase())));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => server.forceShutdown());
  return { address: `127.0.0.1:${port}`, state };
}

/** api (grpc) behind its inbound sidecar, web's sidecar with an upstream to it; a client on web's outbound listener. */
async function mesh(t: TestContext, appAddress: string) {
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const api = await startSidecar(t, ['--service', 'api', '--protocol', 'grpc', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', appAddress, '--admin', '127.0.0.1:0']);
  const inbound = api.listeners['inbound']!;
  const web = await startSidecar(t, ['--service', 'web', '--issuer', ca, '--upstream', `api=127.0.0.1:0=${inbound}=grpc`, '--admin', '127.0.0.1:0']);
  const outbound = web.listeners['upstream api']!;
  const client = new grpc.Client(outbound, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': MESSAGE_LIMIT, 'grpc.max_send_message_length': MESSAGE_LIMIT });
  t.after(() => client.close());
  return { dir, ca, api, web, inbound, outbound, client };
}

function unary(client: grpc.Client, name: string, request: Buffer, options: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; response: Buffer | undefined; trailers: grpc.Metadata | null; ms: number }> {
  const start = Date.now();
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | null = null;
    const call = client.makeUnaryRequest(`${SERVICE}/${name}`, raw, raw, request, new grpc.Metadata(), options, (err, response) => {
      setImmediate(() => resolve({ err, response, trailers, ms: Date.now() - start }));
    });
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('gRPC through two sidecars: unary, streaming both ways, status codes, trailing metadata, 4 MiB messages', async (t) => {
  const { address, state } = await grpcApp(t);
  const { client, api } = await mesh(t, address);

  const hello = await unary(client, 'Unary', Buffer.from('hello'));
  assert.equal(hello.err, null);
  assert.equal(hello.response?.toString(), 'hello');
  assert.deepEqual(hello.trailers?.get('x-trailer'), ['from-the-app']);
  assert.deepEqual(hello.trailers?.get('x-blob-bin'), [Buffer.from([0, 1, 2, 255])], 'binary trailing metadata intact');
  assert.match(state.seenXfcc[0]!, new RegExp(`URI=${WEB_ID}$`), 'the app sees the caller identity (x-forwarded-client-cert)');

  const missing = await unary(client, 'Unary', Buffer.from('notfound'));
  assert.equal(missing.err?.code, grpc.status.NOT_FOUND);
  assert.equal(missing.err?.details, 'no such widget: größe 42%', 'grpc-message (percent-encoded) travels unchanged');
  assert.deepEqual(missing.err?.metadata.get('x-trailer'), ['from-the-app']);

  const big = randomBytes(4 * 1024 * 1024);
  const echoed = await unary(client, 'Unary', big);
  assert.equal(echoed.err, null);
  assert.equal(echoed.response?.length, big.length);
  assert.equal(sha(echoed.response!), sha(big), 'a 4 MiB message arrives intact both ways');

  // Server streaming: 200 messages and trailing metadata.
  const listed = await new Promise<{ items: string[]; status: grpc.StatusObject }>((resolve, reject) => {
    const items: string[] = [];
    const call = client.makeServerStreamRequest(`${SERVICE}/List`, raw, raw, Buffer.from('200'), new grpc.Metadata(), {});
    call.on('data', (m: Buffer) => items.push(m.toString()));
    call.on('error', reject);
    call.on('status', (status: grpc.StatusObject) => resolve({ items, status }));
  });
  assert.equal(listed.items.length, 200);
  assert.equal(listed.items[199], 'item 199');
  assert.equal(listed.status.code, grpc.status.OK);
  assert.deepEqual(listed.status.metadata.get('x-count'), ['200']);

  // Client streaming: 300 messages of 10 KiB, summarised by the app.
  const parts = Array.from({ length: 300 }, () => randomBytes(10 * 1024));
  const upload = await new Promise<string>((resolve, reject) => {
    const call = client.makeClientStreamRequest(`${SERVICE}/Upload`, raw, raw, new grpc.Metadata(), {}, (err, response) => (err ? reject(err) : resolve(response!.toString())));
    const pump = (i: number): void => {
      for (; i < parts.length; i++) {
        if (!call.write(parts[i]!)) return void call.once('drain', () => pump(i + 1));
      }
      call.end();
    };
    pump(0);
  });
  const whole = createHash('sha256');
  for (const p of parts) whole.update(p);
  assert.equal(upload, `300 ${whole.digest('hex')}`);

  // Bidirectional: each message is answered before the next is sent (full duplex, not buffered until the end).
  const chat = client.makeBidiStreamRequest(`${SERVICE}/Chat`, raw, raw, new grpc.Metadata(), {});
  const replies: string[] = [];
  let waiting: ((m: string) => void) | null = null;
  chat.on('data', (m: Buffer) => (waiting ? waiting(m.toString()) : replies.push(m.toString())));
  for (let i = 0; i < 50; i++) {
    const reply = new Promise<string>((r) => (waiting = r));
    chat.write(Buffer.from(`ping ${i}`));
    const got = await Promise.race([reply, new Promise<string>((_, rej) => setTimeout(() => rej(new Error(`no reply to ping ${i}`)), 5000))]);
    assert.equal(got, `PING ${i}`);
  }
  waiting = null;
  const chatStatus = await new Promise<grpc.StatusObject>((resolve) => {
    chat.on('status', resolve);
    chat.end();
  });
  assert.equal(chatStatus.code, grpc.status.OK);

  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.ok(metricValue(metrics, 'weft_requests_total', { direction: 'inbound', source_identity: WEB_ID, tls: 'true', code: '200' }) >= 6, metrics);
});

test('the hop between the sidecars is HTTP/2 over mTLS: concurrent calls share one TLS connection', async (t) => {
  const { address } = await grpcApp(t);
  const { client, api, web, dir, ca, inbound } = await mesh(t, address);
  const calls = await Promise.all(Array.from({ length: 40 }, (_, i) => unary(client, 'Unary', Buffer.from(`call ${i}`))));
  for (const [i, c] of calls.entries()) assert.equal(c.response?.toString(), `call ${i}`);
  const metrics = (await admin(api.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_requests_total', { direction: 'inbound', source_identity: WEB_ID, tls: 'true', code: '200' }), 40);
  // HTTP/1.1 would need a connection per call in flight; HTTP/2 multiplexes them on one.
  assert.equal(metricValue(metrics, 'weft_connections_total', { direction: 'inbound', source_identity: WEB_ID, tls: 'true' }), 1, metrics);
  const webMetrics = (await admin(web.admin, '/metrics')).body;
  assert.equal(metricValue(webMetrics, 'weft_requests_total', { direction: 'outbound', service: 'api', code: '200' }), 40);

  // ALPN as a TLS client sees it: h2 for an app declared grpc, even when http/1.1 is offered first.
  const certs = join(dir, 'web-cert');
  const issued = await runWeft(['ca', 'issue', '--issuer', ca, '--service', 'web', '--out', certs]);
  assert.equal(issued.code, 0, issued.stderr);
  const s = await sClient(inbound, ['-cert', join(certs, 'cert.pem'), '-cert_chain', join(certs, 'cert.pem'), '-key', join(certs, 'key.pem'), '-alpn', 'http/1.1,h2']);
  assert.match(s, /ALPN protocol: h2/, s);
});

test('deadlines: DEADLINE_EXCEEDED in about the deadline, and the slow handler is cancelled', async (t) => {
  const { address, state } = await grpcApp(t);
  const { client } = await mesh(t, address);
  const started = Date.now();
  const slow = await unary(client, 'Slow', Buffer.from('x'), { deadline: Date.now() + 500 });
  assert.equal(slow.err?.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(slow.ms >= 450 && slow.ms < 1500, `DEADLINE_EXCEEDED after ${slow.ms} ms`);
  const deadline = Date.now() + 3000;
  while (state.slowCancelledAt === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(state.slowCancelledAt !== null, 'the app saw the call cancelled');
  assert.ok(state.slowCancelledAt - started < 1500, `cancelled ${state.slowCancelledAt - started} ms after the call started`);
});

/** A raw HTTP/2 app that ignores grpc-timeout: it answers nothing (or headers and one message) and records what arrives. */
async function stallingApp(t: TestContext) {
  const seen: { headers: IncomingHttpHeaders; rstCode: number | undefined; closedAt: number }[] = [];
  const server = createH2Server();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const entry = { headers, rstCode: undefined as number | undefined, closedAt: 0 };
    seen.push(entry);
    stream.on('error', () => {});
    stream.on('close', () => {
      entry.rstCode = stream.rstCode;
      entry.closedAt = Date.now();
    });
    const path = headers[':path'];
    if (path === `${SERVICE}/Started` || path === `${SERVICE}/Reset`) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.write(Buffer.from([0, 0, 0, 0, 2, 0x68, 0x69])); // one gRPC message: "hi"
      if (path === `${SERVICE}/Reset`) setTimeout(() => stream.close(h2.NGHTTP2_INTERNAL_ERROR), 100);
    } else if (path === `${SERVICE}/ResetEarly`) {
      stream.close(h2.NGHTTP2_CANCEL);
    }
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    // The sidecar keeps its session to the app open while idle: do not wait for it.
    for (const session of sessions) session.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

test('the sidecar enforces grpc-timeout: trailers-only DEADLINE_EXCEEDED, the app stream cancelled, the remaining time forwarded', async (t) => {
  const app = await stallingApp(t);
  const { outbound } = await mesh(t, app.address);
  const session = h2Connect(`http://${outbound}`);
  session.on('error', () => {});
  t.after(() => session.close());
  const call = (path: string, timeout: string) =>
    new Promise<{ headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders | null; data: Buffer; ms: number }>((resolve, reject) => {
      const start = Date.now();
      const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': timeout });
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | null = null;
      const chunks: Buffer[] = [];
      req.on('response', (h) => (headers = h));
      req.on('trailers', (tr) => (trailers = tr));
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('error', reject);
      req.on('close', () => resolve({ headers, trailers, data: Buffer.concat(chunks), ms: Date.now() - start }));
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    });

  const before = await call(`${SERVICE}/Nothing`, '300m');
  assert.equal(before.headers[':status'], 200);
  assert.equal(before.headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED), 'trailers-only: the status is in the headers');
  assert.equal(before.headers['weft-error'], 'WEFT_E_TIMEOUT');
  assert.equal(before.trailers, null);
  assert.ok(before.ms >= 280 && before.ms < 1000, `answered after ${before.ms} ms`);
  const forwarded = Number(/^(\d+)u$/.exec(String(app.seen[0]?.headers['grpc-timeout']))?.[1]);
  assert.ok(forwarded > 200_000 && forwarded <= 300_000, `the app got grpc-timeout ${String(app.seen[0]?.headers['grpc-timeout'])}: the time left`);
  const deadline = Date.now() + 2000;
  while (app.seen[0]!.closedAt === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(app.seen[0]!.rstCode, h2.NGHTTP2_CANCEL, 'the upstream stream is reset with CANCEL');

  const after = await call(`${SERVICE}/Started`, '300m');
  assert.equal(after.headers[':status'], 200);
  assert.deepEqual([...after.data], [0, 0, 0, 0, 2, 0x68, 0x69], 'the message sent before the deadline arrives');
  assert.equal(after.trailers?.['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED), 'after the response started, the status comes in trailers');
  assert.equal(after.trailers?.['weft-error'], 'WEFT_E_TIMEOUT');
  assert.ok(after.ms >= 280 && after.ms < 1000, `ended after ${after.ms} ms`);
});

test('RST_STREAM travels both ways: a caller cancel reaches the app, an app reset reaches the caller', async (t) => {
  const app = await stallingApp(t);
  const { outbound } = await mesh(t, app.address);
  const session = h2Connect(`http://${outbound}`);
  session.on('error', () => {});
  t.after(() => session.close());
  const open = (path: string) => {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => {});
    req.write(Buffer.from([0, 0, 0, 0, 0]));
    return req;
  };
  const until = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 3000;
    while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(ok(), what);
  };

  // The caller cancels a call in progress: the app's stream is reset with CANCEL.
  const started = open(`${SERVICE}/Started`);
  await new Promise((r) => started.once('data', r));
  started.close(h2.NGHTTP2_CANCEL);
  await until('the app saw the cancel', () => app.seen[0]?.closedAt !== 0 && app.seen[0]?.rstCode !== undefined);
  assert.equal(app.seen[0]!.rstCode, h2.NGHTTP2_CANCEL);

  // The app resets a call after its response started: the caller's stream is reset with the same code.
  const reset = open(`${SERVICE}/Reset`);
  let gotMessage = false;
  reset.on('data', () => (gotMessage = true));
  await new Promise((r) => reset.once('close', r));
  assert.ok(gotMessage, 'the message before the reset arrived');
  assert.equal(reset.rstCode, h2.NGHTTP2_INTERNAL_ERROR);

  // The app resets before responding: a local reply (trailers-only UNAVAILABLE, weft-error).
  const early = open(`${SERVICE}/ResetEarly`);
  const headers = await new Promise<IncomingHttpHeaders>((r) => early.once('response', r));
  assert.equal(headers['grpc-status'], String(grpc.status.UNAVAILABLE));
  assert.equal(headers['weft-error'], 'WEFT_E_UPSTREAM_RESET');
});

test('gRPC local replies are trailers-only: an unreachable app is UNAVAILABLE with weft-error', async (t) => {
  const app = await stallingApp(t);
  const { client } = await mesh(t, app.address.replace(/:\d+$/, ':1'));
  const r = await unary(client, 'Unary', Buffer.from('x'));
  assert.equal(r.err?.code, grpc.status.UNAVAILABLE);
  assert.match(r.err?.details ?? '', /upstream unreachable/);
  assert.deepEqual(r.err?.metadata.get('weft-error'), ['WEFT_E_UPSTREAM_CONNECT']);
});

/** `openssl s_client` output for a TLS handshake with `args` (stdin closed at once). */
function sClient(address: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', address, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

test('a GRPCRoute retries UNAVAILABLE: a 50% failing method succeeds for every call, and the app saw the retries', async (t) => {
  const server = new grpc.Server();
  let calls = 0;
  const flaky = { path: `${SERVICE}/Flaky`, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw };
  server.addService({ Flaky: flaky }, {
    Flaky: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      calls++;
      if (Math.random() < 0.5) callback({ code: grpc.status.UNAVAILABLE, details: 'try again' });
      else callback(null, call.request);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.after(() => server.forceShutdown());
  const dir = await tempDir(t);
  const ca = await makeCa(dir);
  const api = await startSidecar(t, ['--service', 'api', '--protocol', 'grpc', '--issuer', ca, '--inbound', '127.0.0.1:0', '--app', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0']);
  const file = join(dir, 'web.yaml');
  await writeFile(
    file,
    `service: web
identity:
  issuer: { dir: ${ca} }
admin:
  listen: 127.0.0.1:0
upstreams:
  - name: api
    listen: 127.0.0.1:0
    protocol: grpc
    endpoints: ["${api.listeners['inbound']!}"]
    trafficPolicy:
      retryBudget: { percent: 200, minRetriesPerSecond: 10 }
    routes:
      - kind: GRPCRoute
        name: api
        rules:
          - matches: [{ method: { service: weft.test.Echo } }]
            retry: { attempts: 10, codes: [UNAVAILABLE], backoff: 1ms }
            backendRefs: [{ name: api }]
`,
  );
  const web = await startSidecar(t, ['-c', file]);
  const client = new grpc.Client(web.listeners['upstream api']!, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const n = 200;
  let ok = 0;
  for (let i = 0; i < n; i++) {
    const r = await unary(client, 'Flaky', Buffer.from(`call ${i}`));
    if (r.err === null && r.response?.toString() === `call ${i}`) ok++;
  }
  t.diagnostic(`${ok}/${n} succeeded; the app saw ${calls} calls`);
  assert.equal(ok, n);
  assert.ok(calls > n * 1.3, `retries reached the app: ${calls} calls for ${n}`);
  const metrics = (await admin(web.admin, '/metrics')).body;
  assert.equal(metricValue(metrics, 'weft_retries_total', { direction: 'outbound', service: 'api' }), calls - n);
});
