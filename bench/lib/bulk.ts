/**
 * Bulk-stream tool for the L4 benchmark (source and sink in their own processes).
 *
 *   node dist/bench/lib/bulk.js sink [--port 0]
 *       Listens on 127.0.0.1; prints {"listening":PORT}. Per connection: reads an 8-byte
 *       big-endian length N, then counts N bytes, then writes back the 8-byte count it received
 *       and closes. Runs until killed.
 *   node dist/bench/lib/bulk.js source --port P --bytes N [--timeout-ms 120000]
 *       Connects to 127.0.0.1:P, sends the length and N bytes (1 MiB writes, with
 *       backpressure), waits for the sink's count, prints {"bytes","ms","gbps"}.
 * The acknowledgement means the time covers every byte reaching the sink, through any proxies.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { randomFillSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

/** Starts the sink on 127.0.0.1:port (0 = any); resolves with the bound port. */
export function startSink(port: number): Promise<number> {
  const server = createServer((socket: Socket) => {
    let header: Buffer | null = Buffer.alloc(0);
    let expected = -1n;
    let received = 0n;
    socket.on('data', (chunk: Buffer) => {
      if (header !== null) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        expected = header.readBigUInt64BE(0);
        received = BigInt(header.length - 8);
        header = null;
      } else {
        received += BigInt(chunk.length);
      }
      if (expected >= 0n && received >= expected) {
        const ack = Buffer.alloc(8);
        ack.writeBigUInt64BE(received);
        socket.end(ack);
        expected = -2n;
      }
    });
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', 4096, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Sends `bytes` to 127.0.0.1:port and resolves once the sink acknowledged all of them. */
export function runSource(port: number, bytes: number, timeoutMs: number): Promise<{ bytes: number; ms: number; gbps: number }> {
  return new Promise((resolve, reject) => {
    const chunk = randomFillSync(Buffer.allocUnsafe(1024 * 1024));
    const socket = connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => socket.destroy(new Error(`no acknowledgement within ${timeoutMs} ms`)), timeoutMs);
    let t0 = 0;
    let sent = 0;
    let ack = Buffer.alloc(0);
    const pump = () => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void socket.once('drain', pump);
      }
    };
    socket.once('connect', () => {
      t0 = performance.now();
      const header = Buffer.alloc(8);
      header.writeBigUInt64BE(BigInt(bytes));
      socket.write(header);
      pump();
    });
    socket.on('data', (d: Buffer) => {
      ack = Buffer.concat([ack, d]);
      if (ack.length < 8) return;
      const ms = performance.now() - t0;
      clearTimeout(timer);
      const got = Number(ack.readBigUInt64BE(0));
      socket.destroy();
      if (got !== bytes) reject(new Error(`the sink received ${got} bytes, expected ${bytes}`));
      else resolve({ bytes, ms, gbps: (bytes * 8) / (ms / 1000) / 1e9 });
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (ack.length < 8) reject(new Error(`connection closed after ${sent} bytes sent, before the sink's acknowledgement`));
    });
  });
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: { port: { type: 'string', default: '0' }, bytes: { type: 'string' }, 'timeout-ms': { type: 'string', default: '120000' } },
  });
  if (command === 'sink') {
    const port = await startSink(Number(values.port));
    process.stdout.write(`${JSON.stringify({ listening: port })}\n`);
    return;
  }
  if (command === 'source') {
    if (!values.bytes || values.port === '0') throw new Error('source needs --port and --bytes');
    const r = await runSource(Number(values.port), Number(values.bytes), Number(values['timeout-ms']));
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  throw new Error('usage: bulk.js sink [--port P] | bulk.js source --port P --bytes N [--timeout-ms MS]');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: Error) => {
    process.stderr.write(`bulk: ${err.message}\n`);
    process.exit(1);
  });
}
