import { formatHostPort, type HostPort } from '../config/address.js';
import type { EndpointConfig, ListenerProtocol, SidecarConfig } from '../config/sidecar-schema.js';
import type { CertificateBundle } from '../pki/certificate-bundle.js';
import type { Watch } from '../watch.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import type { CompiledListener } from '../proxy/listener/proxy-listener.js';
import { Cluster } from '../proxy/upstream/cluster.js';
import { MtlsConnector, plainConnector } from '../proxy/upstream/connector.js';
import { compileAuthz, type AuthzPolicyInput } from '../proxy/authz/authz.js';
import { compileRouter, type RouteInput, type TcpRouteInput } from '../proxy/route/router.js';
import { compileTcpRoutes } from '../proxy/route/tcp.js';
import type { BackendRefConfig } from '../config/route-schema.js';
import type { TrafficPolicyConfig } from '../config/traffic-policy-schema.js';
import { RateLimiter } from '../proxy/resilience/rate-limiter.js';

/** Keep-alive on pooled connections to the local app (below Node's default 5 s server timeout). */
const APP_KEEPALIVE_MS = 4_000;
/** Keep-alive on pooled mTLS connections to remote sidecars (below their idle timeout). */
const MESH_KEEPALIVE_MS = 30_000;

/** A configuration compiled into runtime objects, ready to be swapped in. */
export interface CompiledSidecar {
  readonly version: number;
  readonly config: SidecarConfig;
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly listeners: readonly CompiledListener[];
}

/**
 * Holds clusters by key across reloads, so that a reload which keeps an upstream keeps its
 * pooled connections. `retain` closes (gracefully) the clusters the new snapshot dropped.
 */
export class ClusterRegistry {
  readonly #clusters = new Map<string, Cluster>();
  readonly #limiters = new Map<string, RateLimiter>();

  /** The rate limiter for `key` (its settings): buckets survive reloads that keep them. */
  rateLimiter(key: string, create: () => RateLimiter): RateLimiter {
    let limiter = this.#limiters.get(key);
    if (limiter === undefined) {
      limiter = create();
      this.#limiters.clear(); // one inbound listener: an older setting's buckets are not needed
      this.#limiters.set(key, limiter);
    }
    return limiter;
  }

  getOrCreate(key: string, create: () => Cluster): Cluster {
    let cluster = this.#clusters.get(key);
    if (cluster === undefined) {
      cluster = create();
      this.#clusters.set(key, cluster);
    }
    return cluster;
  }

  retain(keys: ReadonlySet<string>): void {
    for (const [key, cluster] of this.#clusters) {
      if (!keys.has(key)) {
        this.#clusters.delete(key);
        void cluster.close();
      }
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.#clusters.values()];
    this.#clusters.clear();
    await Promise.all(all.map((c) => c.close()));
  }
}

/** The key that identifies a listener's socket across reloads. */
export function listenerKey(name: string, listen: HostPort): string {
  return listen.port === 0 ? `${name}@${formatHostPort(listen)}` : formatHostPort(listen);
}

/**
 * Compiles validated configuration into listeners and clusters. Pure apart from cluster
 * creation, which goes through the registry so unchanged clusters are reused.
 */
export function compileSidecar(
  config: SidecarConfig,
  ctx: { version: number; trustDomain: string; certs: Watch<CertificateBundle>; clusters: ClusterRegistry },
): CompiledSidecar {
  const spiffeId = serviceSpiffeId(ctx.trustDomain, config.namespace, config.service);
  const { limits } = config;
  const listeners: CompiledListener[] = [];
  if (config.inbound) {
    const inbound = config.inbound;
    const inboundProtocol = listenerProtocol(inbound.protocol);
    const mtls = inbound.mtls ?? 'strict';
    const dryRun = inbound.strictDryRun === true;
    const key = `app|${formatHostPort(inbound.app)}|${limits.connectTimeout}`;
    const cluster = ctx.clusters.getOrCreate(
      key,
      () => new Cluster({ key, name: `${config.service} (app)`, endpoints: [inbound.app], connector: plainConnector(limits.connectTimeout), keepAliveTimeoutMs: APP_KEEPALIVE_MS }),
    );
    const rateLimit = inbound.trafficPolicy?.rateLimit;
    listeners.push({
      key: listenerKey('inbound', inbound.listen),
      name: 'inbound',
      listen: inbound.listen,
      direction: 'inbound',
      service: config.service,
      protocol: inboundProtocol,
      declaredProtocol: inbound.protocol,
      // A strict dry run still accepts plaintext: permissive on the wire, counted as strict would refuse.
      security: dryRun ? 'permissive' : mtls,
      admission: {
        allow: inbound.allow ? new Set(inbound.allow) : null,
        requireTls: mtls === 'strict' && !dryRun,
        authz:
          inbound.authorization === undefined
            ? null
            : compileAuthz({ policies: policiesOf(inbound.authorization), defaultAction: inbound.authorization.defaultAction, trustDomain: ctx.trustDomain, protocol: inboundProtocol === 'tcp' ? 'tcp' : 'http' }),
        strictDryRun: dryRun,
      },
      localSpiffeId: spiffeId,
      localService: config.service,
      upstreamIdentity: null,
      cluster,
      clusters: [cluster],
      router: null,
      tcpRoutes: null,
      rateLimiter: rateLimit === undefined ? null : ctx.clusters.rateLimiter(`inbound|${JSON.stringify(rateLimit)}`, () => new RateLimiter(rateLimit)),
      limits,
    });
  }
  const directory = backendDirectory(config, ctx.trustDomain);
  for (const upstream of config.upstreams) {
    const namespace = upstream.namespace ?? config.namespace;
    const own = directory.get(`${namespace}/${upstream.name}`)!;
    const used = new Map<string, Cluster>();
    const clusterFor = (service: BackendService, subset: Readonly<Record<string, string>> | undefined): Cluster => {
      const cluster = meshCluster(service, subset, ctx, limits.connectTimeout);
      used.set(cluster.key, cluster);
      return cluster;
    };
    const cluster = clusterFor(own, undefined);
    const resolve = (ref: BackendRefConfig): Cluster | null => {
      const service = directory.get(`${ref.namespace ?? namespace}/${ref.name}`);
      return service === undefined ? null : clusterFor(service, ref.subset);
    };
    const routes = (upstream.routes ?? []).map((r, i) => ({ ...r, namespace: r.namespace ?? namespace, createdOrder: r.createdOrder ?? i }));
    const httpRoutes = routes.filter((r) => r.kind !== 'TCPRoute') as RouteInput[];
    const tcpRoutes = routes.filter((r) => r.kind === 'TCPRoute') as TcpRouteInput[];
    listeners.push({
      key: listenerKey(`upstream ${upstream.name}`, upstream.listen),
      name: `upstream ${upstream.name}`,
      listen: upstream.listen,
      direction: 'outbound',
      service: upstream.name,
      protocol: listenerProtocol(upstream.protocol),
      declaredProtocol: upstream.protocol,
      security: 'local',
      admission: { allow: null, requireTls: false, authz: null, strictDryRun: false },
      localSpiffeId: spiffeId,
      localService: config.service,
      upstreamIdentity: own.identity,
      cluster,
      router: httpRoutes.length === 0 ? null : compileRouter(httpRoutes, resolve),
      tcpRoutes: tcpRoutes.length === 0 ? null : compileTcpRoutes(tcpRoutes, resolve),
      clusters: [...used.values()],
      rateLimiter: null,
      limits,
    });
  }
  return { version: ctx.version, config, spiffeId, trustDomain: ctx.trustDomain, listeners };
}

/** The listener stage for a declared protocol: http2 and grpc are served by the HTTP stage (which speaks both versions). */
function listenerProtocol(protocol: ListenerProtocol | undefined): 'http' | 'tcp' | 'auto' {
  if (protocol === undefined) return 'auto';
  return protocol === 'http2' || protocol === 'grpc' ? 'http' : protocol;
}

/** A service the routes may send to: its identity, endpoints (with metadata) and traffic policy. */
interface BackendService {
  readonly name: string;
  readonly identity: string;
  readonly endpoints: readonly EndpointConfig[];
  readonly trafficPolicy: TrafficPolicyConfig | undefined;
}

/**
 * The services this sidecar can reach, by `namespace/name`: in static mode its upstreams
 * (their endpoints are the backends of routes), in connected mode every service of the
 * server's snapshot.
 */
function backendDirectory(config: SidecarConfig, trustDomain: string): Map<string, BackendService> {
  const out = new Map<string, BackendService>();
  for (const s of config.meshServices ?? []) out.set(`${s.namespace}/${s.name}`, s);
  for (const u of config.upstreams) {
    const namespace = u.namespace ?? config.namespace;
    const key = `${namespace}/${u.name}`;
    const known = out.get(key);
    out.set(key, {
      name: u.name,
      identity: u.identity ?? known?.identity ?? serviceSpiffeId(trustDomain, namespace, u.name),
      endpoints: u.endpoints ?? known?.endpoints ?? [],
      trafficPolicy: u.trafficPolicy ?? known?.trafficPolicy,
    });
  }
  return out;
}

/** The mTLS cluster of a service (or of the subset of its endpoints whose metadata has every pair of `subset`). */
function meshCluster(service: BackendService, subset: Readonly<Record<string, string>> | undefined, ctx: { certs: Watch<CertificateBundle>; clusters: ClusterRegistry }, connectTimeout: number): Cluster {
  const pairs = subset === undefined ? [] : Object.entries(subset).sort(([a], [b]) => a.localeCompare(b));
  const endpoints = pairs.length === 0 ? service.endpoints : service.endpoints.filter((e) => pairs.every(([k, v]) => e.metadata[k] === v));
  const policy = service.trafficPolicy;
  const key = `mesh|${service.identity}|${endpoints.map((e) => `${formatHostPort(e.address)}*${e.weight}`).join(',')}|${connectTimeout}|${policy === undefined ? '' : JSON.stringify(policy)}`;
  const name = pairs.length === 0 ? service.name : `${service.name} (${pairs.map(([k, v]) => `${k}=${v}`).join(', ')})`;
  return ctx.clusters.getOrCreate(
    key,
    () =>
      new Cluster({
        key,
        name,
        endpoints,
        connector: new MtlsConnector({ certs: ctx.certs, expectedId: service.identity, timeoutMs: connectTimeout }),
        keepAliveTimeoutMs: MESH_KEEPALIVE_MS,
        ...(policy === undefined ? {} : { policy }),
      }),
  );
}
/** The policies of an authorization section: `rules` as a policy named `static`, then the named ones. */
function policiesOf(authorization: NonNullable<NonNullable<SidecarConfig['inbound']>['authorization']>): AuthzPolicyInput[] {
  const named = authorization.policies.map((p) => ({ name: p.name, rules: p.rules }));
  return authorization.rules.length > 0 ? [{ name: 'static', rules: authorization.rules }, ...named] : named;
}
