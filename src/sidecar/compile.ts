import { formatHostPort, type HostPort } from '../config/address.js';
import type { SidecarConfig } from '../config/sidecar-schema.js';
import type { CertificateBundle } from '../pki/certificate-bundle.js';
import type { Watch } from '../watch.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import type { CompiledListener } from '../proxy/listener/proxy-listener.js';
import { Cluster } from '../proxy/upstream/cluster.js';
import { MtlsConnector, plainConnector } from '../proxy/upstream/connector.js';
import { compileAuthz, type AuthzPolicyInput } from '../proxy/authz/authz.js';

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
        authz: inbound.authorization === undefined ? null : compileAuthz({ policies: policiesOf(inbound.authorization), defaultAction: inbound.authorization.defaultAction, trustDomain: ctx.trustDomain, protocol: inboundProtocol === 'tcp' ? 'tcp' : 'http' }),
        strictDryRun: dryRun,
      },
      localSpiffeId: spiffeId,
      upstreamIdentity: null,
      cluster: ctx.clusters.getOrCreate(
        key,
        () => new Cluster({ key, endpoints: [inbound.app], connector: plainConnector(limits.connectTimeout), keepAliveTimeoutMs: APP_KEEPALIVE_MS }),
      ),
      router: null,
      limits,
    });
  }
  for (const upstream of config.upstreams) {
    const identity = upstream.identity ?? serviceSpiffeId(ctx.trustDomain, upstream.namespace ?? config.namespace, upstream.name);
    const endpoints = upstream.endpoints ?? [];
    const key = `mesh|${identity}|${endpoints.map(formatHostPort).join(',')}|${limits.connectTimeout}`;
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
      upstreamIdentity: identity,
      cluster: ctx.clusters.getOrCreate(
        key,
        () =>
          new Cluster({
            key,
            endpoints,
            connector: new MtlsConnector({ certs: ctx.certs, expectedId: identity, timeoutMs: limits.connectTimeout }),
            keepAliveTimeoutMs: MESH_KEEPALIVE_MS,
          }),
      ),
      router: null,
      limits,
    });
  }
  return { version: ctx.version, config, spiffeId, trustDomain: ctx.trustDomain, listeners };
}

/**
 * The listener protocol of a declared one: `http2` and `grpc` are served by the `http`
 * stage (HTTP/1.1 and HTTP/2 on one listener); `auto` detects HTTP/1, HTTP/2 or TCP.
 */
function listenerProtocol(declared: 'http' | 'http2' | 'grpc' | 'tcp' | 'auto' | undefined): CompiledListener['protocol'] {
  return declared === 'tcp' || declared === 'auto' ? declared : 'http';
}

/** The policies of an authorization section: `rules` as a policy named `static`, then the named ones. */
function policiesOf(authorization: NonNullable<NonNullable<SidecarConfig['inbound']>['authorization']>): AuthzPolicyInput[] {
  const named = authorization.policies.map((p) => ({ name: p.name, rules: p.rules }));
  return authorization.rules.length > 0 ? [{ name: 'static', rules: authorization.rules }, ...named] : named;
}
