/**
 * WebSocket through two sidecars with the `ws` library: the HTTP/1.1 upgrade is forwarded,
 * the 101 joins the connections on every hop (web's outbound listener, mTLS between the
 * sidecars, api's inbound to the app), and frames travel as opaque bytes: messages from
 * 0 B to 16 MiB, binary and text, echoed intact, and close codes and reasons both ways.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { pair } from '../helpers/http-pair.js';

const WEB_ID = 'spiffe://example.org/ns/default/svc/web';
const MAX_PAYLOAD = 32 * 1024 * 1024;

/** An echo app: each message back as it came (binary or text); `close <code> <reason>` closes from the app's side. */
async function echoApp(t: TestContext) {
  const seen: { xfcc: string | undefined; closes: { code: number; reason: string }[] } = { xfcc: undefined, closes: [] };
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_PAYLOAD });
  wss.on('connection', (ws, req) => {
    seen.xfcc = req.headers['x-forwarded-client-cert'] as string | undefined;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = data as Buffer;
      if (!isBinary && buf.length < 64 && buf.toString().startsWith('close ')) {
        const [, code, ...reason] = buf.toString().split(' ');
        ws.close(Number(code), reason.join(' '));
        return;
      }
      ws.send(buf, { binary: isBinary });
    });
    ws.on('close', (code, reason) => seen.closes.push({ code, reason: reason.toString() }));
  });
  await new Promise<void>((r) => wss.once('listening', r));
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    return new Promise<void>((r) => wss.close(() => r()));
  });
  return { address: `127.0.0.1:${(wss.address() as AddressInfo).port}`, seen };
}

async function open(t: TestContext, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { maxPayload: MAX_PAYLOAD });
  t.after(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`no upgrade: ${res.statusCode} ${String(res.headers['weft-error'])}`)));
  });
  return ws;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Sends one message and resolves with the echo (its bytes and whether it was binary), bounded in time. */
function roundTrip(ws: WebSocket, payload: Buffer, binary: boolean): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${payload.length} bytes within 30 s`)), 30_000);
    ws.once('message', (data: RawData, isBinary: boolean) => {
      clearTimeout(timer);
      resolve({ data: data as Buffer, binary: isBinary });
    });
    ws.send(binary ? payload : payload.toString('latin1'), { binary });
  });
}

test('WebSocket messages of 0 B to 16 MiB, binary and text, are echoed intact through both sidecars', async (t) => {
  const app = await echoApp(t);
  const { outbound } = await pair(t, app.address);
  const ws = await open(t, `ws://${outbound}/echo`);
  assert.match(String(app.seen.xfcc), new RegExp(`URI=${WEB_ID}$`), 'the upgrade request carries the caller identity');
  for (const size of [0, 1, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024]) {
    const bytes = randomBytes(size);
    const binary = await roundTrip(ws, bytes, true);
    assert.equal(binary.binary, true);
    assert.equal(binary.data.length, size, `binary ${size}`);
    assert.equal(sha(binary.data), sha(bytes), `binary ${size}`);
    // Text: printable ASCII (valid UTF-8, one byte per character).
    const text = Buffer.from(bytes.map((b) => 0x20 + (b % 95)));
    const echoed = await roundTrip(ws, text, false);
    assert.equal(echoed.binary, false);
    assert.equal(echoed.data.length, size, `text ${size}`);
    assert.equal(sha(echoed.data), sha(text), `text ${size}`);
  }
});

test('a close code and reason travel both ways', async (t) => {
  const app = await echoApp(t);
  const { outbound } = await pair(t, app.address);

  // The client closes: the app receives its code and reason, and the client gets the echoed close.
  const a = await open(t, `ws://${outbound}/a`);
  const closedA = new Promise<{ code: number; reason: string }>((r) => a.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  a.close(4001, 'client is done: ünïcode reason');
  assert.deepEqual(await closedA, { code: 4001, reason: 'client is done: ünïcode reason' });
  const deadline = Date.now() + 5000;
  while (app.seen.closes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(app.seen.closes[0], { code: 4001, reason: 'client is done: ünïcode reason' });

  // The app closes: the client receives the app's code and reason.
  const b = await open(t, `ws://${outbound}/b`);
  const closedB = new Promise<{ code: number; reason: string }>((r) => b.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  b.send('close 4002 server going away');
  assert.deepEqual(await closedB, { code: 4002, reason: 'server going away' });
});
