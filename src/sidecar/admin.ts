import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HostPort } from '../config/address.js';
import { formatHostPort } from '../config/address.js';
import { WeftError } from '../errors.js';

/** What the admin endpoint reads from the running sidecar. */
export interface AdminSource {
  ready(): boolean;
  metrics(): Promise<{ contentType: string; body: string }>;
  config(): unknown;
  certs(): unknown;
  /** Drains the inbound listener (launcher shutdown step 1); resolves when done. */
  drainInbound(): Promise<void>;
}

/**
 * The sidecar's admin endpoint, loopback only: `/live`, `/ready`, `/metrics`, `/config`,
 * `/certs`, and `POST /drain/inbound` (with an `x-weft-admin` header).
 */
export class AdminServer {
  readonly #server: Server;
  readonly #source: AdminSource;

  constructor(source: AdminSource) {
    this.#source = source;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: Error) => send(res, 500, 'text/plain', `${err.message}\n`));
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  listen(addr: HostPort): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new WeftError('WEFT_E_LISTEN', `admin cannot listen on ${formatHostPort(addr)}: ${err.code === 'EADDRINUSE' ? 'the address is already in use' : err.message}; set admin.listen (--admin) to a free loopback port`)),
      );
      this.#server.listen({ host: addr.host, port: addr.port }, () => {
        this.#server.removeAllListeners('error');
        this.#server.on('error', () => {}); // accept failures (EMFILE…) must not crash the sidecar
        const a = this.#server.address();
        resolve(typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : addr);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/drain/inbound') {
      // A header that a web page in a local browser cannot send without a CORS preflight,
      // which this endpoint never grants: no cross-site draining.
      if (req.headers['x-weft-admin'] === undefined) return send(res, 403, 'text/plain', 'send the header x-weft-admin: 1 with this request\n');
      await this.#source.drainInbound();
      return send(res, 200, 'text/plain', 'inbound drained\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    switch (path) {
      case '/live':
        return send(res, 200, 'text/plain', 'live\n');
      case '/ready':
        return this.#source.ready() ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', 'not ready\n');
      case '/metrics': {
        const m = await this.#source.metrics();
        return send(res, 200, m.contentType, m.body);
      }
      case '/config':
        return send(res, 200, 'application/json', `${JSON.stringify(this.#source.config(), null, 2)}\n`);
      case '/certs':
        return send(res, 200, 'application/json', `${JSON.stringify(this.#source.certs(), null, 2)}\n`);
      default:
        return send(res, 404, 'text/plain', 'not found: try /ready, /live, /metrics, /config, /certs\n');
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
