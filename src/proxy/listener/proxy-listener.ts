import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { HostPort } from '../../config/address.js';
import { formatHostPort } from '../../config/address.js';
import type { LimitsConfig } from '../../config/sidecar-schema.js';
import type { CertificateBundle } from '../../pki/certificate-bundle.js';
import type { Watch } from '../../watch.js';
import type { SidecarMetrics, HopLabels } from '../../obs/metrics.js';
import type { Observer } from '../../obs/observer.js';
import { RequestRecord } from '../../obs/request-record.js';
import { UNKNOWN } from '../../control/telemetry-wire.js';
import { serviceOf } from '../../pki/spiffe.js';
import type { Cluster } from '../upstream/cluster.js';
import type { BackendPicker, Router } from '../route/types.js';
import type { RateLimiter } from '../resilience/rate-limiter.js';
import { WeftError } from '../../errors.js';
import { PLAINTEXT_PEER, tlsOptions, tlsPeerIdentity, type PeerIdentity } from '../tls.js';
import { admitted, peekConnectionInfo, setConnectionInfo, type Admission, type ConnectionInfo } from '../connection-info.js';
import type { HttpRoute } from '../http1/exchange.js';
import { formatXfcc } from '../http1/headers.js';
import { ServerConnection } from '../http1/server-connection.js';
import { localReplyBytes } from '../http1/local-reply.js';
import { H2ServerConnection } from '../http2/server-session.js';
import { ProtocolSniffer, type DetectedProtocol } from './detect.js';
import { proxyTcp } from '../tcp/pipe.js';
import type { Logger } from '../../obs/log.js';
import type { CallerTally } from '../caller-tally.js';
import { PolicyRecorder } from '../policy-recorder.js';

/** How a listener treats the bytes it accepts before the protocol stage. */
export type ListenerSecurity = 'strict' | 'permissive' | 'local';

/** A listener's compiled configuration; a new one is swapped in on reload. */
export interface CompiledListener {
  /** Identity of the socket across reloads: the listen address. */
  readonly key: string;
  /** Human name for messages: `inbound` or `upstream api`. */
  readonly name: string;
  readonly listen: HostPort;
  readonly direction: 'inbound' | 'outbound';
  /** Metric label: the local service (inbound) or upstream name (outbound). */
  readonly service: string;
  /**
   * `http`: HTTP/1.1 and HTTP/2 (ALPN, else the HTTP/2 preface); `tcp`: opaque bytes;
   * `auto`: the first bytes decide between HTTP/1, HTTP/2 and TCP (listener/detect.ts).
   */
  readonly protocol: 'http' | 'tcp' | 'auto';
  /**
   * The app's declared protocol when it says more than `protocol`: `http2` or `grpc` (the
   * app speaks HTTP/2), so TLS callers offering both h2 and http/1.1 get h2 by ALPN.
   * Otherwise they get http/1.1 (the app may speak only HTTP/1.1, and the sidecar does not
   * translate); callers offering only h2 (the outbound sidecar for an HTTP/2 caller) get h2.
   */
  readonly declaredProtocol?: 'http' | 'http2' | 'grpc' | 'tcp' | 'auto';
  /** strict/permissive: terminate mTLS from remote callers; local: plaintext from the app. */
  readonly security: ListenerSecurity;
  /** Who may call: the allow-list, whether plaintext is refused (strict inbound), the authorization rules, a strict dry run. */
  readonly admission: Admission;
  /** Our own SPIFFE ID (for x-forwarded-client-cert `By=`, and metric labels). */
  readonly localSpiffeId: string;
  /** This sidecar's service (the `source_service` of outbound hops). */
  readonly localService: string;
  /** For outbound listeners, the identity of the upstream (metric `destination_identity` label). */
  readonly upstreamIdentity: string | null;
  readonly cluster: Cluster;
  /** The routes attached to the upstream (outbound HTTP listeners), or null. */
  readonly router: Router<Cluster> | null;
  /** TCPRoute backends attached to the upstream (a weighted choice per connection), or null. */
  readonly tcpRoutes: BackendPicker<Cluster> | null;
  /** Every cluster this listener may send to (kept open while it is in use). */
  readonly clusters: readonly Cluster[];
  /** Inbound: the local rate limit, or null. */
  readonly rateLimiter: RateLimiter | null;
  readonly limits: LimitsConfig;
}

/** How long permissive mode waits for a first byte before treating a connection as plaintext (server-first protocols). */
const SNIFF_TIMEOUT_MS = 300;
const TLS_HANDSHAKE = 0x16;

/** What the listener's sweep and drain need of an HTTP connection, HTTP/1 or HTTP/2. */
interface HttpConnection {
  closeIfIdle(): void;
  checkTimeouts(now: number): void;
}

/**
 * Owns one listening socket. Accepted connections pass through the security stage (mTLS
 * termination, permissive detection or none) into the HTTP or TCP stage of the compiled
 * configuration current at accept time. `update` swaps the configuration without closing
 * the socket; `drain` stops accepting and lets in-flight work finish up to a deadline.
 */
export class ProxyListener {
  #compiled: CompiledListener;
  #route: HttpRoute;
  readonly #server: NetServer;
  readonly #tls: TlsServer;
  readonly #sockets = new Set<Socket>();
  readonly #httpConnections = new Set<HttpConnection>();
  /** `http` listeners' connections whose first bytes have not arrived yet (the sweep bounds the wait). */
  readonly #sniffing = new Set<ProtocolSniffer>();
  /** Sockets in the TCP stage: their authorization is re-checked when the rules change. */
  readonly #tcpSockets = new Set<Socket>();
  readonly #httpContext = { route: () => this.#route };
  /** Checks HTTP connections' header and idle timeouts once a second (no timer per request). */
  #sweeper: NodeJS.Timeout | null = null;
  readonly #metrics: SidecarMetrics;
  readonly #obs: Observer;
  readonly #log: Logger | null;
  readonly #callers: CallerTally | null;
  #policy: PolicyRecorder;
  readonly #draining = { value: false };
  readonly #unsubscribe: () => void;

  /**
   * `callers` counts inbound callers for the migration report; `log` receives the sampled
   * authorization and strict dry-run lines (none without it).
   */
  constructor(compiled: CompiledListener, deps: { certs: Watch<CertificateBundle>; obs: Observer; callers?: CallerTally; log?: Logger }) {
    this.#compiled = compiled;
    this.#obs = deps.obs;
    this.#metrics = deps.obs.metrics;
    this.#log = deps.log ?? null;
    this.#callers = deps.callers ?? null;
    this.#policy = this.#policyRecorder(compiled);
    this.#route = this.#httpRoute(compiled);
    // Half-open: a caller's FIN travels on (TCP mode) while the reply still comes back;
    // HTTP connections decide themselves when to close.
    this.#server = createNetServer({ allowHalfOpen: true }, (socket) => this.#onConnection(socket));
    this.#tls = createTlsServer({
      ...tlsOptions(deps.certs.get()),
      allowHalfOpen: true,
      requestCert: true,
      rejectUnauthorized: true,
      handshakeTimeout: compiled.limits.headerTimeout,
      // HTTP/2 or HTTP/1.1 by ALPN. Node's own selection (ALPNProtocols) fails the handshake
      // of a client that offers only other protocols (RFC 7301's no_application_protocol):
      // here such a client gets its own first choice, and the bytes decide as without ALPN.
      ALPNCallback: ({ protocols }) => selectAlpn(this.#compiled, protocols),
    });
    this.#tls.on('secureConnection', (socket: TLSSocket) => this.#onSecure(socket));
    this.#tls.on('tlsClientError', () => this.#metrics.error(this.#compiled.direction, this.#compiled.service, 'WEFT_E_TLS_HANDSHAKE'));
    this.#unsubscribe = deps.certs.subscribe((bundle) => this.#tls.setSecureContext(tlsOptions(bundle)));
  }

  get compiled(): CompiledListener {
    return this.#compiled;
  }

  /** Binds the socket; resolves with the bound address (useful with port 0). */
  listen(): Promise<HostPort> {
    const { listen, name } = this.#compiled;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.code === 'EADDRNOTAVAIL' ? 'no local interface has that address' : err.message;
        reject(new WeftError('WEFT_E_LISTEN', `${name} cannot listen on ${formatHostPort(listen)}: ${why}; choose another address or stop what holds it`));
      };
      this.#server.once('error', onError);
      this.#server.listen({ host: listen.host, port: listen.port }, () => {
        this.#server.removeListener('error', onError);
        // After binding, errors are accept failures (EMFILE…): count them, never crash.
        this.#server.on('error', () => this.#metrics.error(this.#compiled.direction, this.#compiled.service, 'WEFT_E_ACCEPT'));
        this.#sweeper = setInterval(this.#sweep, 1000).unref();
        const addr = this.#server.address();
        resolve(typeof addr === 'object' && addr !== null ? { host: addr.address, port: addr.port } : listen);
      });
    });
  }

  /** The address actually bound, once listening. */
  address(): HostPort | null {
    const addr = this.#server.address();
    return typeof addr === 'object' && addr !== null ? { host: addr.address, port: addr.port } : null;
  }

  /**
   * Swaps in a new compiled configuration for connections accepted from now on, and for
   * the next request of open HTTP connections. Open connections of callers a tightened
   * allow-list or strict mode refuses are closed; when the authorization rules changed,
   * open TCP connections are checked again and those denied now are closed (HTTP
   * connections stay open: each request is checked against the rules current then).
   */
  update(compiled: CompiledListener): void {
    const old = this.#compiled;
    const tightened = !sameAdmission(compiled.admission, old.admission);
    const authz = compiled.admission.authz;
    const recheckTcp = authz !== old.admission.authz && authz !== null;
    this.#compiled = compiled;
    if (compiled.service !== old.service || compiled.direction !== old.direction) this.#policy = this.#policyRecorder(compiled);
    else showPolicySeries(this.#policy, compiled);
    this.#route = this.#httpRoute(compiled);
    if (tightened) {
      for (const socket of this.#sockets) {
        const info = peekConnectionInfo(socket);
        if (info !== null && !admitted(compiled.admission, info)) socket.destroy();
      }
    }
    if (recheckTcp) {
      for (const socket of this.#tcpSockets) {
        const info = peekConnectionInfo(socket);
        if (info === null || socket.destroyed) continue;
        const decision = authz.checkConnection(info.peer.spiffeId);
        if (decision.allowed) continue;
        this.#policy.denied(info, decision, null, null);
        this.#metrics.error(info.hop.direction, info.hop.service, 'WEFT_E_AUTHZ_DENIED');
        socket.destroy();
      }
    }
  }

  /**
   * Stops accepting, lets in-flight requests and connections finish (HTTP keep-alive
   * connections are closed as they go idle), and destroys what is left at `deadline`
   * (epoch ms).
   */
  async drain(deadline: number): Promise<void> {
    this.#draining.value = true;
    this.#unsubscribe();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    while (this.#sockets.size > 0 && Date.now() < deadline) {
      for (const conn of this.#httpConnections) conn.closeIfIdle();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const socket of this.#sockets) socket.destroy();
    await closed;
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
  }

  readonly #sweep = (): void => {
    const now = performance.now();
    for (const conn of this.#httpConnections) conn.checkTimeouts(now);
    if (this.#sniffing.size > 0) this.#expireSniffing(now);
    this.#policy.tick();
  };

  #httpRoute(c: CompiledListener): HttpRoute {
    return { inbound: c.direction === 'inbound', admission: c.admission, policy: this.#policy, cluster: c.cluster, router: c.router, rateLimiter: c.rateLimiter, limits: c.limits, metrics: this.#metrics, obs: this.#obs, draining: this.#draining };
  }

  #policyRecorder(c: CompiledListener): PolicyRecorder {
    const recorder = new PolicyRecorder(this.#metrics.policyCounters(c.direction, c.service), this.#log);
    showPolicySeries(recorder, c);
    return recorder;
  }

  #onConnection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const c = this.#compiled;
    if (this.#draining.value) {
      socket.destroy();
      return;
    }
    if (c.security === 'local') {
      this.#dispatch(socket, PLAINTEXT_PEER, true);
    } else if (c.security === 'strict') {
      this.#tls.emit('connection', socket);
    } else {
      this.#sniff(socket);
    }
  }

  /** Permissive mode: a TLS ClientHello starts with 0x16; anything else (or silence) is plaintext. */
  #sniff(socket: Socket): void {
    const timer = setTimeout(() => {
      socket.removeListener('data', onData);
      this.#dispatch(socket, PLAINTEXT_PEER, false);
    }, SNIFF_TIMEOUT_MS);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE) this.#tls.emit('connection', socket);
      else this.#dispatch(socket, PLAINTEXT_PEER, false);
    };
    socket.once('data', onData);
  }

  #onSecure(socket: TLSSocket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    this.#dispatch(socket, tlsPeerIdentity(socket), true, socket.alpnProtocol);
  }

  /** `alpn`: the protocol TLS negotiated (false or undefined: none, or plaintext). */
  #dispatch(socket: Socket, peer: PeerIdentity, tls: boolean, alpn?: string | false | null): void {
    if (socket.destroyed) return;
    const c = this.#compiled;
    const outbound = c.direction === 'outbound';
    const hop: HopLabels = {
      direction: c.direction,
      service: c.service,
      source_service: outbound ? c.localService : serviceOf(peer.spiffeId),
      source_identity: outbound ? c.localSpiffeId : (peer.spiffeId ?? UNKNOWN),
      destination_identity: outbound ? (c.upstreamIdentity ?? UNKNOWN) : c.localSpiffeId,
      tls: tls ? 'true' : 'false',
    };
    const remoteAddress = socket.remoteAddress ?? null;
    const callers = c.direction === 'inbound' && this.#callers !== null ? this.#callers.connection(peer.spiffeId, remoteAddress, tls) : null;
    const info: ConnectionInfo = {
      peer,
      tls,
      hop,
      xfcc: peer.spiffeId !== null && peer.certHash !== null ? formatXfcc(c.localSpiffeId, peer.certHash, peer.spiffeId) : null,
      remoteAddress,
      callers,
    };
    setConnectionInfo(socket, info);
    this.#metrics.connectionOpened(hop);
    socket.once('close', () => {
      this.#metrics.connectionClosed(hop);
      if (callers !== null) this.#callers!.closed(callers);
    });
    if (c.protocol === 'tcp') return this.#startProtocol(socket, info, 'tcp');
    if (alpn === 'h2') return this.#startProtocol(socket, info, 'http2');
    if (alpn === 'http/1.1') return this.#startProtocol(socket, info, 'http1');
    // No ALPN (plaintext, or TLS without it): the first bytes decide.
    const mode = c.protocol === 'auto' ? 'auto' : 'http';
    const sniffer = new ProtocolSniffer(socket, mode, (protocol) => {
      this.#sniffing.delete(sniffer);
      this.#startProtocol(socket, info, protocol);
    });
    if (mode === 'http' && !sniffer.done) {
      this.#sniffing.add(sniffer);
      socket.once('close', () => this.#sniffing.delete(sniffer));
    }
  }

  /** Hands a connection to the HTTP/1, HTTP/2 or TCP stage (a sniffed socket is paused with its first bytes unshifted). */
  #startProtocol(socket: Socket, info: ConnectionInfo, protocol: DetectedProtocol): void {
    if (socket.destroyed) return;
    if (protocol === 'http1') {
      const conn = new ServerConnection(socket, info, this.#httpContext);
      this.#httpConnections.add(conn);
      socket.once('close', () => this.#httpConnections.delete(conn));
      socket.resume();
    } else if (protocol === 'http2') {
      const conn = new H2ServerConnection(socket, info, this.#httpContext);
      this.#httpConnections.add(conn);
      socket.once('close', () => this.#httpConnections.delete(conn));
    } else {
      const c = this.#compiled;
      this.#tcpSockets.add(socket);
      socket.once('close', () => this.#tcpSockets.delete(socket));
      const cluster = c.tcpRoutes === null ? c.cluster : c.tcpRoutes.pick();
      if (cluster === null) {
        this.#metrics.error(c.direction, c.service, 'WEFT_E_NO_BACKEND');
        socket.destroy();
        return;
      }
      proxyTcp(cluster, this.#obs, socket, info, c.admission, this.#policy);
    }
  }

  /** `http` connections silent past the header timeout get 408, as HTTP/1 answers a head that does not arrive. */
  #expireSniffing(now: number): void {
    const { headerTimeout } = this.#compiled.limits;
    for (const sniffer of this.#sniffing) {
      if (now - sniffer.since <= headerTimeout) continue;
      this.#sniffing.delete(sniffer);
      const socket = sniffer.abandon();
      const info = peekConnectionInfo(socket);
      if (info !== null) {
        this.#metrics.error(info.hop.direction, info.hop.service, 'WEFT_E_HTTP_408');
        const record = new RequestRecord(sniffer.since, '-', '-', null, 'http/1.1');
        record.status = 408;
        record.error = 'WEFT_E_HTTP_408';
        record.end = now;
        this.#obs.request(info.hop, record);
      }
      socket.write(localReplyBytes(408, 'WEFT_E_HTTP_408', `the request head did not arrive within ${headerTimeout} ms`, { close: true, head: false }));
      socket.destroySoon();
    }
  }
}

/**
 * The ALPN protocol for a TLS caller offering `offered`: h2 or http/1.1 by the app's
 * declared protocol (see CompiledListener.declaredProtocol), else the caller's first choice,
 * which cannot fail the handshake (the bytes then decide, as without ALPN).
 */
export function selectAlpn(c: Pick<CompiledListener, 'protocol' | 'declaredProtocol'>, offered: readonly string[]): string | undefined {
  if (c.protocol !== 'tcp') {
    const h2 = offered.includes('h2');
    const h1 = offered.includes('http/1.1');
    const preferH2 = c.declaredProtocol === 'http2' || c.declaredProtocol === 'grpc';
    if (h2 && (preferH2 || !h1)) return 'h2';
    if (h1) return 'http/1.1';
  }
  return offered[0];
}

/** Once a listener has rules or a dry run, its series are shown (at 0 before the first event). */
function showPolicySeries(policy: PolicyRecorder, c: CompiledListener): void {
  policy.counters.authz ||= c.admission.authz !== null;
  policy.counters.strictDryRun ||= c.admission.strictDryRun;
}

/** Same allow-list and TLS requirement (the authorization rules are compared apart). */
function sameAdmission(a: Admission, b: Admission): boolean {
  if (a.requireTls !== b.requireTls) return false;
  if (a.allow === null || b.allow === null) return a.allow === b.allow;
  return a.allow.size === b.allow.size && [...a.allow].every((id) => b.allow!.has(id));
}
