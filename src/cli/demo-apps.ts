import { createServer, request as httpRequest, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { WeftError } from '../errors.js';

/**
 * The demo's applications, run inside the `weft demo` process on loopback, and the small
 * clients its checks use. None of them knows about mTLS: their sidecars do it.
 */

/** Anything the demo listens with: an HTTP app or the TCP echo service. */
export type DemoListener = HttpServer | TcpServer;

/** The longest delay `/slow?ms=N` grants. */
export const MAX_SLOW_MS = 10_000;

/** The delay `/slow?ms=N` asks for, from 0 to MAX_SLOW_MS (0 when absent or not a number). */
export function slowDelayMs(ms: string | null): number {
  return Math.min(MAX_SLOW_MS, Math.max(0, Number(ms) || 0));
}

/**
 * api: answers with the caller identity its sidecar vouched for (x-forwarded-client-cert),
 * or null for plaintext callers. `/fail` answers 503 (failures for the success rate the
 * dashboard shows) and `/slow?ms=N` answers after N ms (at most 10 s; latency).
 */
export function apiApp(): HttpServer {
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://api');
    const xfcc = req.headers['x-forwarded-client-cert'];
    const caller = typeof xfcc === 'string' ? (/URI=([^;,]+)/.exec(xfcc)?.[1] ?? null) : null;
    const answer = (status: number, extra: Record<string, unknown> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ service: 'api', path: req.url, caller, xfcc: xfcc ?? null, ...extra })}\n`);
    };
    if (url.pathname === '/fail') return answer(503, { error: 'failing on purpose (/fail)' });
    if (url.pathname === '/slow') {
      const ms = slowDelayMs(url.searchParams.get('ms'));
      const timer = setTimeout(() => (timers.delete(timer), answer(200, { delayedMs: ms })), ms);
      timers.add(timer);
      res.once('close', () => (clearTimeout(timer), timers.delete(timer)));
      return;
    }
    answer(200);
  });
  server.once('close', () => timers.forEach((t) => clearTimeout(t)));
  return server;
}

/**
 * web: calls api through its sidecar's outbound listener (`apiPort`) and answers with who it
 * is and what api said. A refusal from api's sidecar (its status and `weft-error`) is passed on.
 * `/` calls api's `/from-web`; `/api/PATH` calls api's `/PATH` (e.g. `/api/fail`, `/api/slow?ms=200`).
 */
export function webApp(options: { apiPort: number; spiffeId: string }): HttpServer {
  return createServer((req, res) => {
    req.resume();
    const path = req.url?.startsWith('/api/') ? req.url.slice('/api'.length) : '/from-web';
    const upstream = httpRequest({ host: '127.0.0.1', port: options.apiPort, path, agent: false, timeout: 15_000 }, (r) => {
      readBody(r).then((body) => {
        const error = r.headers['weft-error'];
        res.writeHead(r.statusCode ?? 502, { 'content-type': 'application/json', ...(typeof error === 'string' ? { 'weft-error': error } : {}) });
        res.end(`${JSON.stringify({ service: 'web', spiffeId: options.spiffeId, apiStatus: r.statusCode, api: parseJson(body) })}\n`);
      }, () => res.destroy());
    });
    upstream.on('timeout', () => upstream.destroy(new Error('no answer within 15 s')));
    upstream.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`web could not reach api: ${err.message}\n`);
    });
    upstream.end();
  });
}

/** The TCP service when redis-server is not installed: sends back every byte it gets. */
export function echoServer(): TcpServer {
  return createTcpServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
}

/** Listens on 127.0.0.1:port; a taken port is a WEFT_E_LISTEN error that suggests another --base-port. */
export function listenOn<S extends DemoListener>(server: S, port: number, what: string): Promise<S> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new WeftError('WEFT_E_LISTEN', `the demo's ${what} cannot listen on 127.0.0.1:${port}: ${err.code ?? err.message}; try weft demo --base-port 28000`)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** Closes a listener and every connection it still has. */
export function closeListener(server: DemoListener): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}

/** An HTTP answer; status 0 when there was none (refused, reset, timed out). */
export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** GET http://127.0.0.1:port/path without a connection pool; never throws. */
export function httpGet(port: number, path = '/', timeoutMs = 5000): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs }, (res) => {
      readBody(res).then(
        (body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }),
        () => resolve({ status: 0, headers: {}, body: '' }),
      );
    });
    req.on('error', () => resolve({ status: 0, headers: {}, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Sends `payload` to 127.0.0.1:port and resolves with what comes back up to the first newline ('' on any failure). */
export function tcpLine(port: number, payload: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const done = (text: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    const timer = setTimeout(() => done(''), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('\n')) done(received.slice(0, received.indexOf('\n') + 1));
    });
    socket.on('error', () => done(''));
    socket.on('close', () => done(received));
  });
}

/** True once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number, gone: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gone()) {
    if (await canConnect(port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.on('end', () => resolve(body));
    res.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.trim();
  }
}
