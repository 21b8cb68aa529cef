import { Agent, request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { PeerCertificate } from 'node:tls';
import { WeftError } from '../../errors.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import { spiffeIdFromSan, TLS_CIPHERS } from '../../proxy/tls.js';

/** An HTTP answer from the server. */
export interface ServerAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: Record<string, unknown> | null;
  /** This host's address on the connection (what the server sees us as). */
  readonly localAddress: string | null;
}

/** The server could not be reached (network, TLS, timeout): retry later, maybe elsewhere. */
export class ServerUnreachable extends WeftError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEFT_E_SERVER_UNREACHABLE', message, options);
  }
}

/** What the sidecar trusts the server as. */
export interface ServerTrust {
  /** The mesh's trust bundle: the server's certificate must chain to it. */
  readonly bundlePem: string;
  /** The server's SPIFFE ID, checked on its certificate instead of a DNS name. */
  readonly serverSpiffeId: string;
}

const MAX_ANSWER = 4 * 1024 * 1024;

/** Options of one call to the server. */
interface CallOptions {
  readonly body?: unknown;
  readonly timeoutMs?: number;
  readonly headers?: Record<string, string>;
  readonly insecure?: boolean;
  /** Aborting it ends the call at once (a long poll at shutdown), as a ServerUnreachable error. */
  readonly signal?: AbortSignal;
}

/**
 * A JSON client for the control plane API. Verifies the server against the mesh's trust
 * bundle and its SPIFFE ID (never DNS names, so an IP address in the URL is fine), and
 * presents the sidecar's certificate when it has one. With several URLs (replicas), a
 * call that cannot reach one tries the next, and the one that answered is used first next
 * time. Throws ServerUnreachable when none answered.
 */
export class ServerClient {
  readonly #urls: readonly URL[];
  readonly #identity: () => CertificateBundle | null;
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 8, timeout: 60_000 });
  #trust: ServerTrust | null;
  #current = 0;

  constructor(options: { urls: readonly string[]; trust: ServerTrust | null; identity: () => CertificateBundle | null }) {
    this.#urls = options.urls.map((u) => new URL(u));
    this.#trust = options.trust;
    this.#identity = options.identity;
  }

  /** The URL calls go to first. */
  get url(): string {
    return this.#urls[this.#current]!.origin;
  }

  /** Calls `method path` with an optional JSON body; `timeoutMs` bounds the whole call per URL; `signal` ends it early (ServerUnreachable). */
  async call(method: string, path: string, options: CallOptions = {}): Promise<ServerAnswer> {
    let lastError: Error | null = null;
    for (let i = 0; i < this.#urls.length; i++) {
      const index = (this.#current + i) % this.#urls.length;
      try {
        const answer = await this.#once(this.#urls[index]!, method, path, options);
        if (answer.status === 503) {
          // A replica that cannot reach its store: another one may.
          throw new ServerUnreachable(`${this.#urls[index]!.origin}: ${refusalMessage(answer)}`);
        }
        this.#current = index;
        return answer;
      } catch (err) {
        if (!(err instanceof ServerUnreachable)) throw err;
        lastError = err;
      }
    }
    throw lastError ?? new ServerUnreachable('no server URL');
  }

  /** Trusts a new bundle (after a CA rotation reached this sidecar with a renewal). */
  setTrust(trust: ServerTrust): void {
    this.#trust = trust;
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent.destroy();
  }

  #once(url: URL, method: string, path: string, options: CallOptions): Promise<ServerAnswer> {
    const body = options.body === undefined ? null : Buffer.from(JSON.stringify(options.body));
    const identity = this.#identity();
    const trust = this.#trust;
    if (trust === null && options.insecure !== true) throw new Error('ServerClient: no trust bundle yet');
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port === '' ? 443 : Number(url.port),
          method,
          path,
          agent: options.insecure === true ? false : this.#agent,
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
          headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}), ...options.headers },
          minVersion: 'TLSv1.2',
          ciphers: TLS_CIPHERS,
          ...(options.insecure === true
            ? { rejectUnauthorized: false }
            : {
                ca: trust!.bundlePem,
                checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerSpiffeId(cert, trust!.serverSpiffeId),
                ...(identity ? { cert: identity.chainPem, key: identity.keyPem } : {}),
              }),
        },
        (res) => {
          // Read now: once the answer has ended, the socket may be back in the pool (res.socket null).
          const localAddress = res.socket?.localAddress?.replace(/^::ffff:/, '') ?? null;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER) req.destroy(new Error('answer too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> | null = null;
            try {
              json = text === '' ? null : (JSON.parse(text) as Record<string, unknown>);
            } catch {
              json = null;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, json, localAddress });
          });
          res.on('error', fail);
        },
      );
      const timeoutMs = options.timeoutMs ?? 10_000;
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      function fail(err: Error) {
        clearTimeout(timer);
        reject(new ServerUnreachable(`${url.origin}: ${err.message}`, { cause: err }));
      }
      req.on('error', fail);
      req.end(body ?? undefined);
    });
  }
}

/** checkServerIdentity for the control plane: its certificate must carry the server's SPIFFE ID. */
function checkServerSpiffeId(cert: PeerCertificate, expected: string): Error | undefined {
  return spiffeIdFromSan(cert.subjectaltname ?? '') === expected ? undefined : new Error(`the server's certificate is not for ${expected}`);
}

/** The error message of a refusal (`{error: {message}}`), or a generic one. */
export function refusalMessage(answer: ServerAnswer): string {
  const error = answer.json?.['error'] as { message?: string; code?: string } | undefined;
  return `${answer.status} ${error?.code ?? ''} ${error?.message ?? ''}`.replace(/\s+/g, ' ').trim();
}
