import { createHash } from 'node:crypto';
import type { Catalog, CatalogInstance } from './catalog.js';
import { MESH_NAMESPACE, ROUTE_KINDS, type AuthorizationPolicySpec, type AuthorizationRule, type HealthCheckSpec, type MeshSpec, type ServiceSpec } from './resources.js';
import { DEFAULT_MESH, effectiveMtls, type EffectiveMtls } from './mtls-mode.js';
import type { Store, StoredResource } from './store/store.js';
import { serviceSpiffeId } from '../pki/spiffe.js';
import type { TrafficPolicyConfig } from '../config/traffic-policy-schema.js';
import type { StaticRoute } from '../config/route-schema.js';

/**
 * What one sidecar needs to know, compiled by the server from the resources and the
 * catalog: its inbound policy (mTLS mode, authorization, the app's health check) and every
 * service it may call with its identity and healthy endpoints. `hash` names the content:
 * sidecars follow their snapshot with a long poll, `GET /v1/snapshot` with
 * `If-None-Match: "HASH"`, answered when the content differs from HASH (at once, or when
 * a change makes it differ), else with 304 after the poll timeout. Content hashes survive
 * server restarts and agree across replicas, which a counter would not.
 */
export interface Snapshot {
  readonly hash: string;
  readonly service: string;
  readonly namespace: string;
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly trustBundle: string;
  readonly inbound: {
    /** auto: the Service declares no protocol (the sidecar detects it). */
    readonly protocol: SnapshotProtocol;
    /** The Service's trafficPolicy.rateLimit, enforced by this sidecar, or null. */
    readonly rateLimit: TrafficPolicyConfig['rateLimit'] | null;
    readonly mtls: EffectiveMtls;
    readonly healthCheck: HealthCheckSpec | null;
    readonly authorization: {
      /** What happens to a call no rule matches (the Mesh's setting). */
      readonly defaultAction: 'allow' | 'deny';
      /** Every AuthorizationPolicy targeting this service, by name; rules keep their order. */
      readonly policies: readonly { readonly name: string; readonly rules: readonly AuthorizationRule[] }[];
    };
  };
  readonly services: readonly SnapshotService[];
}

/** A service a sidecar may call. */
export interface SnapshotService {
  readonly name: string;
  readonly namespace: string;
  readonly identity: string;
  readonly protocol: SnapshotProtocol;
  readonly endpoints: readonly { readonly address: string; readonly port: number; readonly metadata: Readonly<Record<string, string>> }[];
  /** The Service's trafficPolicy (applied by each caller's sidecar), or null. */
  readonly trafficPolicy: TrafficPolicyConfig | null;
  /** HTTPRoute, GRPCRoute and TCPRoute resources attached to this service (parentRefs), oldest first. */
  readonly routes: readonly SnapshotRoute[];
}

/** A service's protocol as a sidecar sees it. */
export type SnapshotProtocol = 'http' | 'http2' | 'grpc' | 'tcp' | 'auto';

/**
 * A route attached to a service: what a caller's sidecar compiles into its route table,
 * with its namespace and `createdOrder`, the store revision that created it (Gateway API
 * breaks precedence ties by age).
 */
export type SnapshotRoute = StaticRoute & { readonly namespace: string; readonly createdOrder: number };

/**
 * The version of "everything a snapshot is built from": it moves on every store change
 * (resources, registrations, instance health: the catalog stores health changes, so a
 * change made through any replica reaches every replica's feed). Waiters are woken when
 * it moves.
 */
export class SnapshotFeed {
  readonly #store: Store;
  readonly #catalog: Catalog;
  readonly #trustDomain: string;
  readonly #bundlePem: () => string;
  #version = 1;
  #waiters = new Set<() => void>();
  #stopped = false;
  #cached: { version: number; inputs: Promise<SnapshotInputs> } | null = null;
  #dispose: (() => void) | null = null;

  constructor(options: { store: Store; catalog: Catalog; trustDomain: string; bundlePem: () => string }) {
    this.#store = options.store;
    this.#catalog = options.catalog;
    this.#trustDomain = options.trustDomain;
    this.#bundlePem = options.bundlePem;
  }

  async start(): Promise<void> {
    this.#dispose = await this.#store.watch(await this.#store.revision(), (event) => {
      if (event.type !== 'error') this.#bump();
    });
  }

  /** Wakes every waiting long poll without a change (they look at the replica's readiness again). */
  wakeAll(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  stop(): void {
    this.#stopped = true;
    this.#dispose?.();
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  get version(): number {
    return this.#version;
  }

  /** Resolves when the version passes `after`, or after `timeoutMs` (then with false). */
  wait(after: number, timeoutMs: number): Promise<boolean> {
    if (this.#version > after) return Promise.resolve(true);
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (moved: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(moved);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref();
      this.#waiters.add(wake);
    });
  }

  /** The snapshot of `service` in `namespace` now. */
  async build(namespace: string, service: string): Promise<Snapshot> {
    const { mesh, services, policies: allPolicies, routes, instances } = await this.#inputs();
    const specOf = (ns: string, name: string) => services.find((s) => s.namespace === ns && s.name === name)?.spec as unknown as ServiceSpec | undefined;
    const own = specOf(namespace, service);
    const policies = allPolicies
      .filter((p) => p.namespace === namespace && (p.spec as unknown as AuthorizationPolicySpec).targetRef.name === service)
      .map((p) => ({ name: p.name, rules: (p.spec as unknown as AuthorizationPolicySpec).rules }));
    const content = {
      service,
      namespace,
      spiffeId: serviceSpiffeId(this.#trustDomain, namespace, service),
      trustDomain: this.#trustDomain,
      trustBundle: this.#bundlePem(),
      inbound: {
        protocol: (own?.protocol ?? 'auto') as SnapshotProtocol,
        rateLimit: own?.trafficPolicy?.rateLimit ?? null,
        mtls: effectiveMtls(mesh, own),
        healthCheck: own?.healthCheck ?? null,
        authorization: { defaultAction: (mesh ?? DEFAULT_MESH).authorization.defaultAction, policies },
      },
      services: serviceNames(services, instances).map(({ name, namespace: ns }) => ({
        name,
        namespace: ns,
        identity: serviceSpiffeId(this.#trustDomain, ns, name),
        protocol: (specOf(ns, name)?.protocol ?? 'auto') as SnapshotProtocol,
        endpoints: instances
          .filter((i) => i.namespace === ns && i.service === name && i.health === 'passing')
          .map((i) => ({ address: i.address, port: i.port, metadata: i.metadata })),
        trafficPolicy: specOf(ns, name)?.trafficPolicy ?? null,
        routes: routes.filter((r) => attachedTo(r, ns, name)).map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name, createdOrder: r.createdRevision, rules: (r.spec as { rules: unknown }).rules }) as SnapshotRoute),
      })),
    };
    return { hash: createHash('sha256').update(JSON.stringify(content)).digest('base64url').slice(0, 22), ...content };
  }

  /**
   * What snapshots are built from, read once per feed version and shared by every build at
   * that version: a change wakes every waiting sidecar, and they must not each read the
   * whole store again.
   */
  #inputs(): Promise<SnapshotInputs> {
    if (this.#cached !== null && this.#cached.version === this.#version) return this.#cached.inputs;
    const inputs = (async (): Promise<SnapshotInputs> => {
      const [mesh, services, policies, instances, ...routeLists] = await Promise.all([
        this.#store.get('Mesh', MESH_NAMESPACE, 'default'),
        this.#store.list('Service'),
        this.#store.list('AuthorizationPolicy'),
        this.#catalog.instances(),
        ...ROUTE_KINDS.map((kind) => this.#store.list(kind)),
      ]);
      // Oldest first, then by namespace/name: Gateway API's tie-break between routes.
      const routes = routeLists.flat().sort((a, b) => a.createdRevision - b.createdRevision || `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
      return { mesh: mesh?.spec as unknown as MeshSpec | undefined, services, policies: [...policies].sort((a, b) => a.name.localeCompare(b.name)), routes, instances };
    })();
    const entry = { version: this.#version, inputs };
    this.#cached = entry;
    inputs.catch(() => {
      if (this.#cached === entry) this.#cached = null; // a failed read is not kept
    });
    return inputs;
  }

  #bump(): void {
    this.#version++;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}

/** The store's contents a snapshot is built from. */
interface SnapshotInputs {
  readonly mesh: MeshSpec | undefined;
  readonly services: readonly StoredResource[];
  /** Every AuthorizationPolicy, sorted by name. */
  readonly policies: readonly StoredResource[];
  /** Every HTTPRoute, GRPCRoute and TCPRoute, oldest first. */
  readonly routes: readonly StoredResource[];
  readonly instances: readonly CatalogInstance[];
}

/** True when one of the route's parentRefs is the Service `name` in `namespace` (a parentRef's namespace defaults to the route's). */
function attachedTo(route: StoredResource, namespace: string, name: string): boolean {
  const spec = route.spec as unknown as { parentRefs: readonly { name: string; namespace?: string }[] };
  return spec.parentRefs.some((p) => p.name === name && (p.namespace ?? route.namespace) === namespace);
}

/** Every service known by a Service resource or a registered instance, sorted. */
function serviceNames(services: readonly StoredResource[], instances: readonly CatalogInstance[]): { name: string; namespace: string }[] {
  const keys = new Map<string, { name: string; namespace: string }>();
  for (const s of services) keys.set(`${s.namespace}/${s.name}`, { name: s.name, namespace: s.namespace });
  for (const i of instances) keys.set(`${i.namespace}/${i.service}`, { name: i.service, namespace: i.namespace });
  return [...keys.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
}
