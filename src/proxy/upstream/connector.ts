import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import type { HostPort } from '../../config/address.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import type { Watch } from '../../watch.js';
import { WeftError } from '../../errors.js';
import { clientSecureContext, peerSpiffeId } from '../tls.js';

/** Called once with a connected, ready-to-use socket or the reason there is none. */
export type ConnectCallback = (err: Error | null, socket: Socket | null) => void;

/** Per-connection options of `Connector.connect`. */
export interface ConnectOptions {
  /** ALPN protocols to offer over TLS instead of the connector's own (HTTP/2 sessions: `['h2']`); plaintext ignores it. */
  readonly alpn?: readonly string[];
}

/** Opens connections to an endpoint: plaintext to the local app, or mTLS to a remote sidecar. */
export interface Connector {
  connect(endpoint: HostPort, callback: ConnectCallback, options?: ConnectOptions): void;
  /** Releases watches held by the connector. */
  close(): void;
}

/** The TCP socket under each mTLS socket this module opened (to reset it). */
const tcpUnder = new WeakMap<Socket, Socket>();

/**
 * Abandons a connection in the middle of an exchange (a timeout, a caller that went away):
 * the TCP connection is reset (RST), so the peer (another sidecar, or the app) sees the
 * request aborted rather than an ordinary end of input, which an HTTP/1 server may still
 * answer.
 */
export function abortConnection(socket: Socket): void {
  const tcp = tcpUnder.get(socket) ?? socket;
  if (!tcp.destroyed) {
    try {
      tcp.resetAndDestroy();
    } catch {
      // not a TCP handle (or already closing): an ordinary close
    }
  }
  socket.destroy();
}

/** Plain TCP, for the hop from the inbound listener to the local app. */
export function plainConnector(timeoutMs: number): Connector {
  return {
    connect(endpoint, callback) {
      const socket = netConnect({ host: endpoint.host, port: endpoint.port, noDelay: true, allowHalfOpen: true });
      const timer = setTimeout(() => socket.destroy(connectTimeout(endpoint, timeoutMs)), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        callback(null, socket);
      });
      const onError = (err: Error) => {
        clearTimeout(timer);
        callback(err, null);
      };
      socket.once('error', onError);
    },
    close() {},
  };
}

/**
 * Mutual TLS to a remote sidecar, presenting the local certificate and accepting the peer
 * only if its chain verifies against the trust bundle and its SPIFFE ID equals
 * `expectedId` exactly (DNS names are never checked). The secure context follows
 * certificate rotation; TLS sessions are cached per endpoint for resumption.
 */
export class MtlsConnector implements Connector {
  readonly #expectedId: string;
  readonly #timeoutMs: number;
  readonly #alpn: string[] | undefined;
  #context: SecureContext;
  readonly #sessions = new Map<string, Buffer>();
  readonly #unsubscribe: () => void;

  constructor(options: { certs: Watch<CertificateBundle>; expectedId: string; timeoutMs: number; alpn?: string[] }) {
    this.#expectedId = options.expectedId;
    this.#timeoutMs = options.timeoutMs;
    this.#alpn = options.alpn;
    this.#context = clientSecureContext(options.certs.get());
    this.#unsubscribe = options.certs.subscribe((bundle) => {
      this.#context = clientSecureContext(bundle);
      this.#sessions.clear();
    });
  }

  connect(endpoint: HostPort, callback: ConnectCallback, connectOptions?: ConnectOptions): void {
    const alpn = connectOptions?.alpn ?? this.#alpn;
    // Sessions are cached per ALPN list too: a resumed session keeps what it negotiated.
    const key = `${endpoint.host}:${endpoint.port}${alpn === undefined ? '' : `|${alpn.join(',')}`}`;
    // allowHalfOpen: tls.connect passes it to the TLSSocket, though @types/node omits it.
    const options: ConnectionOptions & { allowHalfOpen: boolean } = {
      host: endpoint.host,
      port: endpoint.port,
      secureContext: this.#context,
      rejectUnauthorized: true,
      // The peer is identified by its SPIFFE ID below, never by a DNS name.
      checkServerIdentity: () => undefined,
      session: this.#sessions.get(key),
      ALPNProtocols: alpn === undefined ? undefined : [...alpn],
      allowHalfOpen: true,
    };
    // The TCP socket is opened here, not by tls.connect, so that abortConnection can reset it.
    const tcp = netConnect({ host: endpoint.host, port: endpoint.port, noDelay: true, allowHalfOpen: true });
    tcp.setNoDelay(true); // on the socket itself now: the TLS socket takes over its handle before 'connect'
    const socket: TLSSocket = tlsConnect({ ...options, socket: tcp });
    socket.setNoDelay(true);
    tcpUnder.set(socket, tcp);
    // The TLS socket reports the TCP socket's errors itself (refused, reset): only keep them from being unhandled here.
    tcp.on('error', () => {});
    tcp.once('close', () => socket.destroy());
    socket.once('close', () => tcp.destroy());
    const timer = setTimeout(() => socket.destroy(connectTimeout(endpoint, this.#timeoutMs)), this.#timeoutMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      this.#sessions.delete(key);
      callback(err, null);
    };
    socket.once('error', onError);
    // Only sessions with a peer that passed the identity check are kept for resumption
    // (TLS 1.2 may deliver the ticket before 'secureConnect', so it waits until then).
    let verified = false;
    let pending: Buffer | undefined;
    socket.on('session', (session: Buffer) => {
      if (verified) this.#sessions.set(key, session);
      else pending = session;
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      // A resumed handshake exposes no peer certificate in Node; completing it proves the
      // peer holds a session that was only ever stored after its identity was verified.
      const actual = socket.isSessionReused() ? this.#expectedId : peerSpiffeId(socket);
      if (actual !== this.#expectedId) {
        socket.destroy(
          new WeftError(
            'WEFT_E_PEER_IDENTITY',
            `${endpoint.host}:${endpoint.port} presented ${actual ?? 'no SPIFFE ID'} but ${this.#expectedId} was expected; check the upstream's endpoints and identity`,
          ),
        );
        return;
      }
      verified = true;
      if (pending !== undefined) this.#sessions.set(key, pending);
      socket.removeListener('error', onError);
      callback(null, socket);
    });
  }

  close(): void {
    this.#unsubscribe();
  }
}

function connectTimeout(endpoint: HostPort, ms: number): WeftError {
  return new WeftError('WEFT_E_CONNECT_TIMEOUT', `connecting to ${endpoint.host}:${endpoint.port} took longer than ${ms} ms`);
}
