import { collectDefaultMetrics } from 'prom-client';
import type { SidecarConfig } from '../config/sidecar-schema.js';
import { formatHostPort, type HostPort } from '../config/address.js';
import type { Logger } from '../obs/log.js';
import { SidecarMetrics } from '../obs/metrics.js';
import { AccessLog } from '../obs/access-log.js';
import { Observer } from '../obs/observer.js';
import type { Tracer } from '../obs/tracing.js';
import { WatchedValue } from '../watch.js';
import type { CertificateBundle } from '../pki/certificate-bundle.js';
import { ProxyListener } from '../proxy/listener/proxy-listener.js';
import { ConfigError } from '../config/problems.js';
import { ClusterRegistry, compileSidecar, type CompiledSidecar } from './compile.js';
import { startIdentity, type SidecarIdentity } from './identity.js';
import { AdminServer } from './admin.js';
import { CallerTally } from '../proxy/caller-tally.js';

/** Outcome of a reload: applied, or rejected with the reason (the old config keeps serving). */
export type ReloadResult = { applied: true; version: number } | { applied: false; error: Error };

/**
 * One running sidecar: identity, listeners, clusters and the admin endpoint, built from a
 * configuration loader. `reload` re-reads the configuration and applies it only if all of
 * it is valid and every new listener could bind; `shutdown` drains and stops.
 */
export class Sidecar {
  readonly #load: () => Promise<SidecarConfig>;
  readonly #log: Logger;
  readonly #metrics = new SidecarMetrics();
  readonly #obs = new Observer(this.#metrics, null);
  /** The access log settings in use (JSON), to tell whether a reload changes them. */
  #accessLogKey = '';
  /** The tracing settings in use (JSON). */
  #tracingKey = '';
  /** Tracers replaced by a reload, still ending the spans of requests in flight. */
  readonly #retiredTracers = new Set<Tracer>();
  readonly #clusters = new ClusterRegistry();
  readonly #listeners = new Map<string, ProxyListener>();
  readonly #certs: WatchedValue<CertificateBundle>;
  /** Inbound callers for the migration report, across reloads (the reporter takes deltas). */
  readonly #callers = new CallerTally();
  #identity: SidecarIdentity;
  #unfollow: () => void;
  #compiled: CompiledSidecar;
  #admin: AdminServer | null = null;
  #adminAddress: HostPort | null = null;
  #ready = false;
  #stopping = false;
  #reloading: Promise<ReloadResult> = Promise.resolve({ applied: true, version: 1 });
  #lastReloadError: string | null = null;
  /** Listeners a reload removed, still draining: their clusters stay open until they finish. */
  readonly #retiring = new Set<ProxyListener>();
  /** Set by POST /drain/inbound: reloads must not bind the inbound listener again. */
  #inboundDrained = false;
  /** Connected mode: the control plane's status for /config. */
  #controlPlane: (() => unknown) | null = null;
  /** Connected mode: the identity belongs to the server session; a reload cannot change it. */
  #identityFixed = false;

  private constructor(load: () => Promise<SidecarConfig>, log: Logger, config: SidecarConfig, identity: SidecarIdentity) {
    this.#load = load;
    this.#log = log;
    this.#identity = identity;
    this.#certs = new WatchedValue(identity.source.get());
    this.#unfollow = this.#follow(identity);
    collectDefaultMetrics({ register: this.#metrics.registry });
    this.#compiled = compileSidecar(config, { version: 1, trustDomain: identity.trustDomain, certs: this.#certs, clusters: this.#clusters });
    this.#metrics.setEjectionSources(() => this.#liveClusters());
  }

  /** The observer every listener reports finished requests and connections to (the tap client plugs in here). */
  get observer(): Observer {
    return this.#obs;
  }

  /** The clusters of the current listeners (outlier metrics). */
  *#liveClusters() {
    const seen = new Set<string>();
    for (const c of this.#compiled.listeners) {
      for (const cluster of c.clusters) {
        if (seen.has(cluster.key)) continue;
        seen.add(cluster.key);
        yield cluster;
      }
    }
  }

  /**
   * Opens the access log and the tracer a configuration asks for, when their settings
   * differ from those in use (`undefined`: unchanged). May throw (a log file that cannot be
   * opened): called before a reload commits, so a failure rejects the whole reload.
   */
  async #prepareObservability(config: SidecarConfig, spiffeId: string): Promise<PreparedObservability> {
    const settings = config.observability.accessLog;
    const accessLogKey = JSON.stringify(settings);
    const tracing = config.observability.tracing;
    const tracingKey = JSON.stringify([tracing, config.service, config.namespace]);
    const prepared: PreparedObservability = { accessLogKey, tracingKey, accessLog: undefined, tracer: undefined };
    try {
      if (accessLogKey !== this.#accessLogKey) {
        prepared.accessLog = settings.enabled
          ? new AccessLog({ path: settings.path, sampling: settings.sampling, onError: (err) => this.#log.error({ error: err.message, path: settings.path }, 'the access log cannot be written: it is off until the next change of its settings') })
          : null;
      }
      if (tracingKey !== this.#tracingKey) {
        // The OpenTelemetry SDK is loaded only when tracing is on (it costs memory and start-up time).
        prepared.tracer =
          tracing === undefined
            ? null
            : new (await import('../obs/tracing.js')).Tracer({ endpoint: tracing.endpoint, sampling: tracing.sampling, headers: tracing.headers, service: config.service, namespace: config.namespace, spiffeId }, this.#log);
      }
    } catch (err) {
      this.#discardObservability(prepared);
      throw err;
    }
    return prepared;
  }

  /** Puts prepared access log and tracer in use and closes the ones they replace (cannot fail). */
  #commitObservability(p: PreparedObservability): void {
    if (p.accessLog !== undefined) {
      this.#obs.accessLog?.close();
      this.#obs.accessLog = p.accessLog;
      this.#accessLogKey = p.accessLogKey;
    }
    if (p.tracer !== undefined) {
      const old = this.#obs.tracer;
      this.#obs.tracer = p.tracer;
      this.#tracingKey = p.tracingKey;
      // Spans of requests still in flight end on the old tracer: flushed after the drain timeout, or at shutdown.
      if (old !== null) {
        this.#retiredTracers.add(old);
        setTimeout(() => {
          this.#retiredTracers.delete(old);
          void old.shutdown();
        }, this.#compiled.config.drainTimeout).unref();
      }
      const tracing = this.#compiled.config.observability.tracing;
      if (p.tracer !== null && tracing !== undefined) this.#log.info({ endpoint: redactUrl(tracing.endpoint), sampling: tracing.sampling }, 'tracing to an OTLP collector');
    }
  }

  /** Closes what `#prepareObservability` opened, for a reload that does not commit. */
  #discardObservability(p: PreparedObservability | null): void {
    p?.accessLog?.close();
    if (p?.tracer) void p.tracer.shutdown();
  }

  /** Flushes and stops the access log and every tracer (shutdown). */
  async #closeObservability(): Promise<void> {
    this.#obs.accessLog?.close();
    await Promise.all([this.#obs.tracer?.shutdown(), ...[...this.#retiredTracers].map((t) => t.shutdown())]);
  }

  /**
   * Loads the configuration, obtains the certificate, binds every listener and the admin
   * endpoint. A connected sidecar passes the identity the server signed (`identity`) and
   * what /config should say about the control plane (`controlPlane`).
   */
  static async start(options: { load: () => Promise<SidecarConfig>; log: Logger; identity?: SidecarIdentity; controlPlane?: () => unknown }): Promise<Sidecar> {
    const config = await options.load();
    const identity = options.identity ?? (await startIdentity(config, options.log));
    const sidecar = new Sidecar(options.load, options.log, config, identity);
    sidecar.#controlPlane = options.controlPlane ?? null;
    sidecar.#identityFixed = options.identity !== undefined;
    try {
      sidecar.#commitObservability(await sidecar.#prepareObservability(config, identity.spiffeId));
      await sidecar.#bindListeners(sidecar.#compiled);
      sidecar.#admin = new AdminServer(sidecar.#adminSource());
      sidecar.#adminAddress = await sidecar.#admin.listen(config.admin.listen);
    } catch (err) {
      await sidecar.#forceClose();
      throw err;
    }
    sidecar.#metrics.configVersion.set(1);
    sidecar.#ready = true;
    sidecar.#log.info({ ...sidecar.addresses(), spiffeId: identity.spiffeId, serial: identity.source.get().serial }, 'sidecar ready');
    return sidecar;
  }

  /** Bound addresses: admin and every listener by name. */
  addresses(): { admin: string | null; listeners: Record<string, string> } {
    const listeners: Record<string, string> = {};
    for (const l of this.#listeners.values()) {
      const a = l.address();
      if (a) listeners[l.compiled.name] = formatHostPort(a);
    }
    return { admin: this.#adminAddress ? formatHostPort(this.#adminAddress) : null, listeners };
  }

  /** Per-caller counts of the inbound listener since the reporter's last `take` (the migration report). */
  callerTally(): CallerTally {
    return this.#callers;
  }

  /** Re-reads and applies the configuration; concurrent calls are serialised. */
  reload(): Promise<ReloadResult> {
    this.#reloading = this.#reloading.then(() => this.#reload());
    return this.#reloading;
  }

  /** Stops accepting, drains in-flight work up to the configured deadline, and releases everything. */
  async shutdown(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#ready = false;
    await this.#reloading; // a reload in progress rolls back when it sees #stopping
    const deadline = Date.now() + this.#compiled.config.drainTimeout;
    this.#log.info({ drainTimeoutMs: this.#compiled.config.drainTimeout }, 'draining');
    await Promise.all([...this.#listeners.values(), ...this.#retiring].map((l) => l.drain(deadline)));
    this.#listeners.clear();
    await this.#clusters.closeAll();
    this.#unfollow();
    if (!this.#identityFixed) this.#identity.source.stop();
    await this.#admin?.close();
    await this.#closeObservability();
    this.#log.info('stopped');
  }

  async #reload(): Promise<ReloadResult> {
    if (this.#stopping) return { applied: false, error: new Error('sidecar is stopping') };
    let newIdentity: SidecarIdentity | null = null;
    let observability: PreparedObservability | null = null;
    const added: ProxyListener[] = [];
    try {
      const config = await this.#load();
      const old = this.#compiled.config;
      if (formatHostPort(config.admin.listen) !== formatHostPort(old.admin.listen)) {
        throw new ConfigError([{ path: 'admin.listen', message: 'the admin address cannot change on reload; restart the sidecar to move it' }]);
      }
      if (identityKey(config) !== identityKey(old)) {
        if (this.#identityFixed) {
          throw new ConfigError([{ path: 'service', message: 'a connected sidecar cannot change its service or namespace on reload; restart it' }]);
        }
        newIdentity = await startIdentity(config, this.#log);
      }
      const trustDomain = (newIdentity ?? this.#identity).trustDomain;
      const compiled = compileSidecar(config, { version: this.#compiled.version + 1, trustDomain, certs: this.#certs, clusters: this.#clusters });
      for (const c of compiled.listeners) {
        if (this.#listeners.has(c.key) || (this.#inboundDrained && c.direction === 'inbound')) continue;
        const listener = new ProxyListener(c, this.#listenerDeps());
        added.push(listener);
        await listener.listen();
      }
      observability = await this.#prepareObservability(config, (newIdentity ?? this.#identity).spiffeId);
      if (this.#stopping) throw new Error('sidecar is stopping');
      // Commit: nothing below can fail.
      if (newIdentity !== null) {
        this.#unfollow();
        this.#identity.source.stop();
        this.#identity = newIdentity;
        this.#unfollow = this.#follow(newIdentity);
        this.#certs.set(newIdentity.source.get());
      }
      const keep = new Set(compiled.listeners.map((c) => c.key));
      const deadline = Date.now() + config.drainTimeout;
      for (const [key, listener] of this.#listeners) {
        if (!keep.has(key)) {
          this.#listeners.delete(key);
          this.#retiring.add(listener);
          void listener.drain(deadline).finally(() => {
            this.#retiring.delete(listener);
            if (!this.#stopping) this.#clusters.retain(this.#clusterKeysInUse());
          });
        }
      }
      for (const c of compiled.listeners) this.#listeners.get(c.key)?.update(c);
      for (const l of added) this.#listeners.set(l.compiled.key, l);
      this.#compiled = compiled;
      this.#clusters.retain(this.#clusterKeysInUse());
      this.#lastReloadError = null;
      this.#commitObservability(observability);
      this.#metrics.configApplied({ version: compiled.version });
      this.#log.info({ version: compiled.version, ...this.addresses() }, 'configuration applied');
      return { applied: true, version: compiled.version };
    } catch (err) {
      await Promise.all(added.map((l) => l.drain(Date.now())));
      this.#discardObservability(observability);
      newIdentity?.source.stop();
      this.#clusters.retain(this.#clusterKeysInUse());
      this.#lastReloadError = (err as Error).message;
      this.#metrics.configApplied({ error: (err as { code?: unknown }).code !== undefined ? String((err as { code?: unknown }).code) : 'WEFT_E_CONFIG' });
      this.#log.error({ error: (err as Error).message, version: this.#compiled.version }, 'configuration rejected; the running configuration keeps serving');
      return { applied: false, error: err as Error };
    }
  }

  /** Clusters of the current snapshot and of listeners still draining after a reload. */
  #clusterKeysInUse(): Set<string> {
    const keys = new Set(this.#compiled.listeners.flatMap((c) => c.clusters.map((x) => x.key)));
    for (const l of this.#retiring) for (const c of l.compiled.clusters) keys.add(c.key);
    return keys;
  }

  #listenerDeps() {
    return { certs: this.#certs, obs: this.#obs, callers: this.#callers, log: this.#log };
  }

  async #bindListeners(compiled: CompiledSidecar): Promise<void> {
    for (const c of compiled.listeners) {
      const listener = new ProxyListener(c, this.#listenerDeps());
      this.#listeners.set(c.key, listener);
      await listener.listen();
    }
  }

  async #forceClose(): Promise<void> {
    await Promise.all([...this.#listeners.values()].map((l) => l.drain(Date.now())));
    this.#listeners.clear();
    await this.#clusters.closeAll();
    this.#unfollow();
    this.#identity.source.stop();
    await this.#admin?.close();
    await this.#closeObservability();
  }

  /** Forwards the identity source's renewals to the sidecar's stable certificate watch. */
  #follow(identity: SidecarIdentity): () => void {
    const record = (b: CertificateBundle) => {
      this.#metrics.certExpiry.reset();
      this.#metrics.certExpiry.set({ spiffe_id: b.spiffeId }, Math.floor(b.notAfter.getTime() / 1000));
    };
    record(identity.source.get());
    identity.source.onRenewal((result) => this.#metrics.certRenewals.inc({ result }));
    return identity.source.subscribe((b) => {
      record(b);
      this.#certs.set(b);
    });
  }

  #adminSource() {
    return {
      ready: () => this.#ready,
      metrics: async () => ({ contentType: this.#metrics.registry.contentType, body: await this.#metrics.registry.metrics() }),
      config: () => ({
        version: this.#compiled.version,
        spiffeId: this.#compiled.spiffeId,
        trustDomain: this.#compiled.trustDomain,
        lastReloadError: this.#lastReloadError,
        addresses: this.addresses(),
        ...(this.#controlPlane ? { controlPlane: this.#controlPlane() } : {}),
        config: redact(this.#compiled.config),
      }),
      certs: () => {
        const b = this.#certs.get();
        return {
          source: this.#identity.source.kind,
          spiffeId: b.spiffeId,
          serial: b.serial,
          notBefore: b.notBefore.toISOString(),
          notAfter: b.notAfter.toISOString(),
          expiresInSeconds: Math.round((b.notAfter.getTime() - Date.now()) / 1000),
        };
      },
      drainInbound: async () => {
        this.#ready = false;
        this.#inboundDrained = true;
        for (const [key, listener] of this.#listeners) {
          if (listener.compiled.direction !== 'inbound') continue;
          await listener.drain(Date.now() + this.#compiled.config.drainTimeout);
          this.#listeners.delete(key);
        }
      },
    };
  }
}

/** An access log and a tracer opened for a configuration; `undefined`: the one in use stays. */
interface PreparedObservability {
  readonly accessLogKey: string;
  readonly tracingKey: string;
  accessLog: AccessLog | null | undefined;
  tracer: Tracer | null | undefined;
}

/** A URL without credentials or query (an API key in a collector URL stays out of the logs). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '<invalid URL>';
  }
}

function identityKey(config: SidecarConfig): string {
  return JSON.stringify([config.identity, config.trustDomain, config.service, config.namespace]);
}

/** A copy of the configuration with PEM text (issuer keys passed inline) and the join token replaced. */
function redact(config: SidecarConfig): unknown {
  return JSON.parse(
    JSON.stringify(config, (_key, value: unknown) =>
      typeof value === 'string' && value.includes('-----BEGIN')
        ? '<PEM redacted>'
        : _key === 'token' && typeof value === 'string'
          ? '<join token redacted>'
          : _key === 'headers' && typeof value === 'object' && value !== null && !Array.isArray(value)
            ? Object.fromEntries(Object.keys(value).map((k) => [k, '<redacted>'])) // the collector's credentials
            : value,
    ),
  );
}
