/**
 * Connection-churn client for `weft bench` (its own process, pinned like the load generator).
 *
 *   node dist/bench/lib/tls-churn.js --port P [--host 127.0.0.1] [--cert F --key F --ca F]
 *        --mode new|resume|keepalive [--duration-ms 5000] [--concurrency 8] [--path /small] [--max N]
 *
 * With --cert/--key/--ca it speaks mTLS (TLS 1.3, the server's chain verified against --ca, no
 * host name check: a SPIFFE certificate has no DNS name); without, plaintext TCP.
 * - new: a new connection (full handshake) per request (`Connection: close`);
 * - resume: a new connection per request resuming the last TLS session (ticket) received;
 * - keepalive: `--concurrency` connections, each sending requests one after another.
 * Prints one JSON line: {mode, connections, requests, errors, resumed, durationMs, protocol, cipher, firstError}.
 * Bounded: stops at --duration-ms or --max requests, whichever comes first.
 */
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** Options of one churn run. */
export interface ChurnOptions {
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly cert: string; readonly key: string; readonly ca: string } | null;
  readonly mode: 'new' | 'resume' | 'keepalive';
  readonly durationMs: number;
  readonly concurrency: number;
  readonly path: string;
  readonly max: number;
}

/** What one churn run did. */
export interface ChurnResult {
  readonly mode: string;
  readonly connections: number;
  readonly requests: number;
  readonly errors: number;
  readonly resumed: number;
  readonly durationMs: number;
  readonly protocol: string | null;
  readonly cipher: string | null;
  readonly firstError: string | null;
}

/**
 * Length of the first complete HTTP response in `buf`, -1 while incomplete, -2 when its
 * length cannot be known (neither Content-Length nor chunked).
 */
export function responseLength(buf: Buffer): number {
  const headerEnd = buf.indexOf('\r\n\r\n');
  if (headerEnd < 0) return -1;
  const head = buf.toString('latin1', 0, headerEnd);
  const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
  if (cl) {
    const total = headerEnd + 4 + Number(cl[1]);
    return buf.length >= total ? total : -1;
  }
  if (/\r\ntransfer-encoding:[ \t]*chunked/i.test(head)) {
    const end = buf.indexOf('\r\n0\r\n\r\n', headerEnd + 2);
    return end < 0 ? -1 : end + 7;
  }
  return -2;
}

/** Runs the churn loop and resolves with its counts. */
export async function runChurn(o: ChurnOptions): Promise<ChurnResult> {
  const ctx: SecureContext | null = o.tls
    ? createSecureContext({
        cert: readFileSync(o.tls.cert),
        key: readFileSync(o.tls.key),
        ca: readFileSync(o.tls.ca),
        minVersion: 'TLSv1.3',
        // weft's order (src/proxy/tls.ts), so every server negotiates the same suite.
        ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      })
    : null;
  const start = performance.now();
  const deadline = start + o.durationMs;
  let connections = 0;
  let requests = 0;
  let errors = 0;
  let resumed = 0;
  let protocol: string | null = null;
  let cipher: string | null = null;
  let firstError: string | null = null;
  let session: Buffer | undefined;
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: bench\r\n${o.mode === 'keepalive' ? '' : 'Connection: close\r\n'}\r\n`);
  const fail = (msg: string) => {
    errors++;
    firstError ??= msg;
  };

  const open = (): Socket => {
    connections++;
    if (!ctx) return netConnect({ host: o.host, port: o.port });
    const s = tlsConnect({
      host: o.host,
      port: o.port,
      secureContext: ctx,
      checkServerIdentity: () => undefined,
      ...(o.mode === 'resume' && session ? { session } : {}),
    });
    s.on('session', (sess: Buffer) => (session = sess));
    return s;
  };
  const readyEvent = ctx ? 'secureConnect' : 'connect';

  /** One connection, one request; resolves when the server has closed it. */
  const oneShot = () =>
    new Promise<void>((resolve) => {
      const s = open();
      let buf: Buffer = Buffer.alloc(0);
      let settled = false;
      const timer = setTimeout(() => s.destroy(new Error('timeout after 5 s')), 5000);
      const finish = (err: string | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) fail(err);
        else if (!buf.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 200')) fail(`unexpected response: ${buf.subarray(0, 60).toString('latin1')}`);
        else requests++;
        s.destroy();
        resolve();
      };
      s.once(readyEvent, () => {
        if (ctx) {
          const t = s as TLSSocket;
          protocol ??= t.getProtocol();
          cipher ??= t.getCipher().standardName;
          if (t.isSessionReused()) resumed++;
        }
        s.write(request);
      });
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        // Connection: close; the server closes after the response. Do not wait for it once complete
        // (some servers linger): the TLS session ticket arrives before the response.
        if (responseLength(buf) > 0) finish(null);
      });
      s.once('end', () => finish(responseLength(buf) > 0 ? null : 'connection closed before a complete response'));
      s.once('error', (e) => finish(e.message));
      s.once('close', () => finish(responseLength(buf) > 0 ? null : 'connection closed before a complete response'));
    });

  /** One keep-alive connection sending requests until the deadline. */
  const keepAlive = () =>
    new Promise<void>((resolve) => {
      const s = open();
      let buf: Buffer = Buffer.alloc(0);
      let done = false;
      let timer: NodeJS.Timeout | null = null;
      const arm = () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => s.destroy(new Error('timeout after 5 s')), 5000);
      };
      const end = (err: string | null) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        if (err) fail(err);
        s.destroy();
        resolve();
      };
      const send = () => {
        if (performance.now() >= deadline || requests >= o.max) return end(null);
        arm();
        s.write(request);
      };
      s.once(readyEvent, () => {
        if (ctx) {
          const t = s as TLSSocket;
          protocol ??= t.getProtocol();
          cipher ??= t.getCipher().standardName;
        }
        send();
      });
      s.on('data', (d: Buffer) => {
        buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
        for (;;) {
          const n = responseLength(buf);
          if (n === -1) return;
          if (n === -2) return end('response without Content-Length or chunked framing');
          if (!buf.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 200')) return end(`unexpected response: ${buf.subarray(0, 60).toString('latin1')}`);
          requests++;
          buf = buf.subarray(n);
          if (buf.length === 0) return send();
        }
      });
      s.once('error', (e) => end(e.message));
      s.once('close', () => end(done ? null : 'connection closed by the server'));
    });

  const worker = async () => {
    while (performance.now() < deadline && requests + errors < o.max) {
      if (o.mode === 'keepalive') await keepAlive();
      else await oneShot();
      if (errors > 1000) break;
    }
  };
  // Resumption needs a first session: make one full handshake before the timed loop.
  if (o.mode === 'resume' && ctx) {
    await oneShot();
    connections = 0;
    requests = 0;
    resumed = 0;
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return { mode: o.mode, connections, requests, errors, resumed, durationMs: performance.now() - t0, protocol, cipher, firstError };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      mode: { type: 'string', default: 'new' },
      'duration-ms': { type: 'string', default: '5000' },
      concurrency: { type: 'string', default: '8' },
      path: { type: 'string', default: '/small' },
      max: { type: 'string', default: '10000000' },
    },
  });
  const mode = values.mode;
  if (mode !== 'new' && mode !== 'resume' && mode !== 'keepalive') throw new Error('--mode must be new, resume or keepalive');
  if (!values.port) throw new Error('--port is required');
  const tls = values.cert && values.key && values.ca ? { cert: values.cert, key: values.key, ca: values.ca } : null;
  const result = await runChurn({
    host: values.host,
    port: Number(values.port),
    tls,
    mode,
    durationMs: Number(values['duration-ms']),
    concurrency: Number(values.concurrency),
    path: values.path,
    max: Number(values.max),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`tls-churn: ${err.message}\n`);
    process.exit(1);
  });
}
