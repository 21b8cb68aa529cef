import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { HeadError, parseRequestHead, parseResponseHead } from '../../src/proxy/http1/head.js';
import { BodyFramer } from '../../src/proxy/http1/body-framer.js';

const limits = { maxHeaders: 100 };

/** Where the proxy thinks a raw request ends: its length in bytes, or the HeadError it raises. */
function proxyReading(raw: string): number | HeadError {
  const buf = Buffer.from(raw, 'latin1');
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return new HeadError(400, 'INCOMPLETE', 'no end of head');
  try {
    const head = parseRequestHead(buf.toString('latin1', 0, end), limits);
    const framer = new BodyFramer();
    framer.reset(head.chunked ? 'chunked' : head.contentLength > 0 ? 'length' : 'none', head.contentLength, 8192, true);
    const n = framer.feed(buf, end + 4);
    if (!framer.done) return new HeadError(400, 'INCOMPLETE', 'body incomplete');
    return end + 4 + n;
  } catch (err) {
    if (err instanceof HeadError) return err;
    throw err;
  }
}

function refusedWith(raw: string, status: number, code?: string): void {
  const r = proxyReading(raw);
  assert.ok(r instanceof HeadError, `expected refusal of ${JSON.stringify(raw)}, got length ${String(r)}`);
  assert.equal(r.status, status, `${JSON.stringify(raw)}: ${r.message}`);
  if (code !== undefined) assert.equal(r.code, code, r.message);
}

test('request heads: fields, framing and connection options are read', () => {
  const head = parseRequestHead('POST /a?b=c HTTP/1.1\r\nHost: api\r\nContent-Length: 11\r\nConnection: keep-alive, X-Hop\r\nX-Empty:\r\nX-Spaces: \t padded value \t', limits);
  assert.equal(head.method, 'POST');
  assert.equal(head.target, '/a?b=c');
  assert.equal(head.minor, 1);
  assert.equal(head.contentLength, 11);
  assert.equal(head.chunked, false);
  assert.deepEqual(head.connection, ['keep-alive', 'x-hop']);
  assert.deepEqual(head.names, ['Host', 'Content-Length', 'Connection', 'X-Empty', 'X-Spaces']);
  assert.deepEqual(head.values, ['api', '11', 'keep-alive, X-Hop', '', 'padded value']);
  assert.deepEqual(head.lower, ['host', 'content-length', 'connection', 'x-empty', 'x-spaces']);
  const chunked = parseRequestHead('PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED', limits);
  assert.equal(chunked.chunked, true);
  assert.equal(chunked.contentLength, -1);
});

test('response heads: status, reason and framing; chunked wins over a length', () => {
  const r = parseResponseHead('HTTP/1.1 404 Not Found\r\nContent-Length: 9', limits);
  assert.equal(r.status, 404);
  assert.equal(r.reason, 'Not Found');
  assert.equal(r.contentLength, 9);
  assert.equal(parseResponseHead('HTTP/1.1 204', limits).reason, '');
  const both = parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked', limits);
  assert.equal(both.chunked, true);
  assert.equal(both.contentLength, -1);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5', limits).contentLength, 5, 'identical repeats are one length');
  // A fragment in a request target could be read one way by authorization and another by the app.
  assert.throws(() => parseRequestHead('GET /public#/../admin HTTP/1.1\r\nHost: a', limits), (e: HeadError) => e.status === 400 && /"#"/.test(e.message));
  assert.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6', limits), (e: HeadError) => e.status === 502);
  assert.throws(() => parseResponseHead('HTTP/1.1 20 OK', limits), (e: HeadError) => e.status === 502);
  assert.throws(() => parseResponseHead('HTTP/2 200 OK', limits), (e: HeadError) => e.status === 502);
  assert.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip', limits), (e: HeadError) => e.code === 'WEFT_E_UPSTREAM_PROTOCOL');
});

test('what a lenient parser might read differently is refused with the right status', () => {
  refusedWith('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('GET / HTTP/1.1\r\nHost: x\r\nContent_Length: 5\r\n\r\n', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'WEFT_E_BAD_FRAMING');
  refusedWith('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 501, 'WEFT_E_TRANSFER_ENCODING');
  refusedWith('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n', 501);
  refusedWith('GET / HTTP/1.1\r\nHost : x\r\n\r\n', 400, 'WEFT_E_BAD_REQUEST');
  refusedWith('GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n', 400);
  refusedWith('GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n', 400);
  refusedWith('GET / HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n', 400);
  refusedWith('GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n', 400);
  refusedWith('GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  refusedWith('GET /\xe9 HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  refusedWith('GET  / HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  refusedWith('G(T / HTTP/1.1\r\nHost: x\r\n\r\n', 400);
  refusedWith('GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505, 'WEFT_E_HTTP_VERSION');
  refusedWith('GET / FTP/1.1\r\nHost: x\r\n\r\n', 400, 'WEFT_E_HTTP_VERSION');
  // Chunked bodies: sizes, line ends and lengths are checked as the bytes pass.
  const chunked = (body: string) => `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
  refusedWith(chunked('0x5\r\nhello\r\n0\r\n\r\n'), 400, 'WEFT_E_BAD_FRAMING');
  refusedWith(chunked('fffffffffffffffff\r\n'), 400, 'WEFT_E_BAD_FRAMING');
  refusedWith(chunked('5\nhello\r\n0\r\n\r\n'), 400);
  refusedWith(chunked('3\r\nhello\r\n0\r\n\r\n'), 400);
  refusedWith(chunked('5\r\nhello\n0\r\n\r\n'), 400);
  refusedWith(chunked('\r\nhello\r\n0\r\n\r\n'), 400);
  refusedWith(chunked('5;a=\x01\r\nhello\r\n0\r\n\r\n'), 400);
  refusedWith(chunked('0\r\nX-Trailer: a\nb\r\n\r\n'), 400);
});

test('too many headers is a 431', () => {
  let text = 'GET / HTTP/1.1';
  for (let i = 0; i < 101; i++) text += `\r\nX-${i}: v`;
  assert.throws(() => parseRequestHead(text, limits), (e: HeadError) => e.status === 431 && e.code === 'WEFT_E_TOO_MANY_HEADERS');
});

test('the body framer finds the end of chunked bodies split anywhere, trailers included', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\ngrpc-status: 0\r\nx-t: 1\r\n\r\nNEXT', 'latin1');
  const end = body.length - 4;
  for (let split = 1; split < end; split++) {
    const framer = new BodyFramer();
    framer.reset('chunked', -1, 1024, true);
    const a = framer.feed(body.subarray(0, split), 0);
    assert.equal(a, split, `split ${split}: the first part is all body`);
    assert.equal(framer.done, false);
    const b = framer.feed(body, split);
    assert.equal(split + b, end, `split ${split}`);
    assert.equal(framer.done, true);
  }
  const big = new BodyFramer();
  big.reset('chunked', -1, 10, false);
  assert.throws(() => big.feed(Buffer.from('0\r\nx-very-long-trailer: 1\r\n\r\n'), 0), (e: HeadError) => e.status === 502);
  const length = new BodyFramer();
  length.reset('length', 3, 0, true);
  assert.equal(length.feed(Buffer.from('abcdef'), 1), 3);
  assert.equal(length.done, true);
});

/**
 * Differential check against Node's own HTTP server (llhttp, strict mode), a likely app
 * behind the sidecar: for every request the proxy accepts, the app must see the same
 * message boundary (the request after it arrives intact); requests llhttp refuses must
 * be refused by the proxy too.
 */
test('where the proxy accepts a request, Node reads the same message boundary', async (t) => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;

  /** What Node makes of `raw` followed by a marker request: the requests it saw, or null if it refused. */
  const nodeReading = (raw: string) =>
    new Promise<string[] | null>((resolve) => {
      seen.length = 0;
      const socket = connect(port, '127.0.0.1');
      let out = '';
      socket.on('data', (d) => (out += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(out.startsWith('HTTP/1.1 200') ? [...seen] : null));
      socket.end(Buffer.from(`${raw}GET /marker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'));
    });

  const corpus = [
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /ext-token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b;c\r\nx\r\n0\r\n\r\n',
    'POST /ext-quoted HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a="b \\" c"\r\nx\r\n0\r\n\r\n',
    'POST /ext-space HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a b\r\nx\r\n0\r\n\r\n',
    'POST /ext-noname HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;=b\r\nx\r\n0\r\n\r\n',
    'POST /ext-novalue HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\r\nx\r\n0\r\n\r\n',
    'POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
    'POST /zero HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    'POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n',
    'POST /trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-check\r\n\r\n3\r\nabc\r\n0\r\nx-check: 1\r\n\r\n',
    'POST /upper HTTP/1.1\r\nHost: x\r\nTRANSFER-ENCODING: Chunked\r\n\r\n1\r\na\r\n0\r\n\r\n',
    'POST /spaced HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  chunked \r\n\r\n1\r\na\r\n0\r\n\r\n',
    'GET /ten HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n',
    'POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'POST /two-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 6\r\n\r\nabcdef',
    'POST /plus HTTP/1.1\r\nHost: x\r\nContent-Length: +6\r\n\r\nabcdef',
    'POST /te-list HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    'POST /te-first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n',
    'POST /hex HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\na\r\n0\r\n\r\n',
    'POST /lf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n0\r\n\r\n',
    'GET /fold HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n Content-Length: 3\r\n\r\nabc',
    'GET /space-colon HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc',
    'GET /nul HTTP/1.1\r\nHost: x\r\nX-A: \x00\r\n\r\n',
    'POST /size-garbage HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 2\r\na\r\n0\r\n\r\n',
    'POST /size-ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n',
    'POST /size-ws-ext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=b\r\na\r\n0\r\n\r\n',
    'POST /trailer-no-colon HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nfoo\r\n\r\n',
    'POST /trailer-fold HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx: 1\r\n y\r\n\r\n',
  ];
  for (const raw of corpus) {
    const ours = proxyReading(raw);
    const node = await nodeReading(raw);
    const line = raw.slice(0, raw.indexOf('\r\n'));
    if (ours instanceof HeadError) continue; // refusing more than the app would is safe
    assert.equal(ours, raw.length, `${line}: the proxy's message must end where the test's does`);
    assert.ok(node !== null, `${line}: accepted by the proxy but refused by Node`);
    assert.deepEqual(node, [`${line.split(' ')[0]} ${line.split(' ')[1]}`, 'GET /marker'], `${line}: Node read another boundary`);
  }
  // And what Node refuses, the proxy refuses too.
  for (const raw of corpus) {
    if ((await nodeReading(raw)) === null) assert.ok(proxyReading(raw) instanceof HeadError, `Node refuses but the proxy accepts: ${JSON.stringify(raw)}`);
  }
});
