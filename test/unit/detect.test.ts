import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { AUTO_DETECT_WAIT_MS, H2_PREFACE, MAX_DETECT_BYTES, ProtocolSniffer, classifyAuto, classifyHttp, type DetectedProtocol } from '../../src/proxy/listener/detect.js';
import { selectAlpn } from '../../src/proxy/listener/proxy-listener.js';

const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

/** A TLS 1.2/1.3 ClientHello record start (handshake, version 3.1, length, ClientHello). */
const CLIENT_HELLO = b([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

test('auto: the HTTP/2 preface, request lines and everything else', () => {
  assert.equal(classifyAuto(H2_PREFACE), 'http2');
  assert.equal(classifyAuto(Buffer.concat([H2_PREFACE, b([0, 0, 0x12, 4])])), 'http2', 'the SETTINGS frame after it changes nothing');
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK']) {
    assert.equal(classifyAuto(b(`${method} / HTTP/1.1\r\n`)), 'http1', method);
    assert.equal(classifyAuto(b(`${method} `)), 'http1', `${method} and a space are enough`);
  }
  assert.equal(classifyAuto(CLIENT_HELLO), 'tcp', 'a TLS ClientHello from the app is opaque TCP');
  assert.equal(classifyAuto(b([0x16])), 'tcp', 'one byte of a ClientHello decides already');
  assert.equal(classifyAuto(b('*1\r\n$4\r\nPING\r\n')), 'tcp', 'Redis RESP');
  assert.equal(classifyAuto(b([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f])), 'tcp', 'PostgreSQL SSLRequest');
  assert.equal(classifyAuto(b('SSH-2.0-OpenSSH_9.2\r\n')), 'tcp');
  assert.equal(classifyAuto(b('get / HTTP/1.1\r\n')), 'tcp', 'methods are case-sensitive');
  assert.equal(classifyAuto(b('GETX / HTTP/1.1\r\n')), 'tcp', 'a known method must be followed by a space');
  assert.equal(classifyAuto(b('BREW /pot HTTP/1.1\r\n')), 'tcp', 'unknown methods are not HTTP here');
  assert.equal(classifyAuto(b('PRI * HTTP/1.1\r\n')), 'tcp', 'a preface that goes wrong');
});

test('auto: partial first bytes wait for more (null) until they decide', () => {
  for (const partial of ['G', 'GE', 'GET', 'P', 'PO', 'PR', 'PRI', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r', 'PROPFIN', 'UNLOC', 'D', 'M', 'MOV']) {
    assert.equal(classifyAuto(b(partial)), null, JSON.stringify(partial));
  }
  assert.equal(classifyAuto(Buffer.alloc(0)), null);
  // Byte by byte, the preface and a request line decide exactly when they are complete.
  for (const [text, expected] of [
    [H2_PREFACE.toString('latin1'), 'http2'],
    ['PROPPATCH /x HTTP/1.1', 'http1'],
  ] as const) {
    let decidedAt = -1;
    for (let n = 1; n <= text.length && decidedAt < 0; n++) {
      const r = classifyAuto(b(text.slice(0, n)));
      if (r !== null) {
        assert.equal(r, expected);
        decidedAt = n;
      }
    }
    assert.equal(decidedAt, expected === 'http2' ? H2_PREFACE.length : 'PROPPATCH '.length);
  }
  assert.ok(MAX_DETECT_BYTES === H2_PREFACE.length, 'no decision needs more than the preface');
});

test('http listeners: one byte decides HTTP/1 unless it is P; the preface is HTTP/2', () => {
  assert.equal(classifyHttp(b('GET / HTTP/1.1\r\n')), 'http1');
  assert.equal(classifyHttp(b('G')), 'http1', 'one byte is enough');
  assert.equal(classifyHttp(b('garbage')), 'http1', 'not P: HTTP/1, whose parser answers 400');
  assert.equal(classifyHttp(b('POST / HTTP/1.1\r\n')), 'http1');
  assert.equal(classifyHttp(b('PUT')), 'http1', 'PU is not PR');
  assert.equal(classifyHttp(b('PATCH / HTTP/1.1\r\n')), 'http1');
  assert.equal(classifyHttp(b('PROPFIND / HTTP/1.1\r\n')), 'http1', 'PRO differs from PRI');
  assert.equal(classifyHttp(b('P')), null);
  assert.equal(classifyHttp(b('PRI * HTTP/2.0')), null);
  assert.equal(classifyHttp(H2_PREFACE), 'http2');
  assert.equal(classifyHttp(CLIENT_HELLO), 'http1');
});

test('ALPN: h2 for callers of HTTP/2 apps, http/1.1 when the caller offers both to an HTTP/1 app, never a failed handshake', () => {
  const http = { protocol: 'http' as const, declaredProtocol: 'http' as const };
  const grpc = { protocol: 'http' as const, declaredProtocol: 'grpc' as const };
  const tcp = { protocol: 'tcp' as const };
  assert.equal(selectAlpn(http, ['h2', 'http/1.1']), 'http/1.1');
  assert.equal(selectAlpn(http, ['h2']), 'h2', 'the outbound sidecar offers h2 only for an HTTP/2 caller');
  assert.equal(selectAlpn(http, ['http/1.1']), 'http/1.1');
  assert.equal(selectAlpn(grpc, ['http/1.1', 'h2']), 'h2');
  assert.equal(selectAlpn({ protocol: 'http', declaredProtocol: 'http2' }, ['h2', 'http/1.1']), 'h2');
  assert.equal(selectAlpn({ protocol: 'auto', declaredProtocol: 'auto' }, ['h2', 'http/1.1']), 'http/1.1');
  assert.equal(selectAlpn(http, ['foo', 'bar']), 'foo', 'others: the caller gets its own first choice');
  assert.equal(selectAlpn(tcp, ['h2', 'http/1.1']), 'h2', 'tcp listeners do not interpret ALPN');
});

/** A loopback server whose accepted sockets go through a ProtocolSniffer; resolves decisions in order. */
async function sniffServer(t: TestContext, mode: 'http' | 'auto') {
  const decisions: { protocol: DetectedProtocol | 'gone'; ms: number; bytes: Buffer }[] = [];
  const waiters: (() => void)[] = [];
  const accepted = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    accepted.add(socket);
    const start = performance.now();
    let recorded = false;
    const record = (protocol: DetectedProtocol | 'gone', bytes: Buffer) => {
      if (recorded) return;
      recorded = true;
      decisions.push({ protocol, ms: performance.now() - start, bytes });
      waiters.splice(0).forEach((w) => w());
    };
    socket.on('error', () => {});
    socket.once('close', () => record('gone', Buffer.alloc(0)));
    new ProtocolSniffer(socket, mode, (protocol) => {
      const ms = performance.now() - start;
      // What the next stage reads first: the bytes the sniffer put back (none after silence).
      socket.once('data', (d: Buffer) => {
        record(protocol, d);
        decisions.at(-1)!.ms = ms;
      });
      socket.resume();
      setTimeout(() => record(protocol, Buffer.alloc(0)), 30);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const socket of accepted) socket.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as AddressInfo).port;
  const next = async (n: number) => {
    const deadline = Date.now() + 5_000;
    while (decisions.length < n && Date.now() < deadline) await new Promise<void>((r) => (waiters.push(r), setTimeout(r, 100)));
    assert.ok(decisions.length >= n, `decision ${n} did not come`);
    return decisions[n - 1]!;
  };
  const client = async () => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    t.after(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  return { next, client };
}

test('sniffer: bytes arriving in pieces wait for a decision and are handed on whole', async (t) => {
  const { next, client } = await sniffServer(t, 'auto');
  const s = await client();
  s.write('G');
  await new Promise((r) => setTimeout(r, 20));
  s.write('E');
  await new Promise((r) => setTimeout(r, 20));
  s.write('T /path HTTP/1.1\r\n');
  const d = await next(1);
  assert.equal(d.protocol, 'http1');
  assert.equal(d.bytes.toString('latin1'), 'GET /path HTTP/1.1\r\n', 'nothing read during detection is lost');
});

test('sniffer: silence is TCP after the bounded wait; a partial method that stalls is TCP at the same deadline', async (t) => {
  const { next, client } = await sniffServer(t, 'auto');
  await client();
  const silent = await next(1);
  assert.equal(silent.protocol, 'tcp');
  assert.ok(silent.ms >= AUTO_DETECT_WAIT_MS - 5 && silent.ms < AUTO_DETECT_WAIT_MS + 200, `decided after ${silent.ms} ms`);
  const s = await client();
  s.write('GE');
  const stalled = await next(2);
  assert.equal(stalled.protocol, 'tcp');
  assert.ok(stalled.ms < AUTO_DETECT_WAIT_MS + 200, `decided after ${stalled.ms} ms`);
  assert.equal(stalled.bytes.toString('latin1'), 'GE', 'the partial bytes are kept for the TCP stage');
});

test('sniffer: a ClientHello and the preface decide at once; http mode waits only on a P', async (t) => {
  const auto = await sniffServer(t, 'auto');
  (await auto.client()).write(CLIENT_HELLO);
  const hello = await auto.next(1);
  assert.equal(hello.protocol, 'tcp');
  assert.ok(hello.ms < AUTO_DETECT_WAIT_MS / 2, `a ClientHello took ${hello.ms} ms`);
  assert.deepEqual(hello.bytes, CLIENT_HELLO);
  (await auto.client()).write(H2_PREFACE);
  assert.equal((await auto.next(2)).protocol, 'http2');

  const http = await sniffServer(t, 'http');
  const s = await http.client();
  s.write('PRI * HTTP/2.0\r\n');
  await new Promise((r) => setTimeout(r, 30));
  s.write('\r\nSM\r\n\r\n');
  const h2 = await http.next(1);
  assert.equal(h2.protocol, 'http2');
  assert.deepEqual(h2.bytes, H2_PREFACE);
  (await http.client()).write('OPTIONS * HTTP/1.1\r\n');
  assert.equal((await http.next(2)).protocol, 'http1');
});

test('sniffer: a caller that closes before a decision is disconnected, with no decision', async (t) => {
  const { next, client } = await sniffServer(t, 'auto');
  const s = await client();
  s.end('PO');
  const d = await next(1);
  assert.equal(d.protocol, 'gone');
  assert.ok(d.ms < AUTO_DETECT_WAIT_MS, `noticed after ${d.ms} ms`);
});
