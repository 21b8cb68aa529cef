import type { Catalog, CatalogInstance } from './catalog.js';
import { MESH_NAMESPACE } from './resources.js';
import type { Store, StoredResource } from './store/store.js';
import { serviceSpiffeId } from '../pki/spiffe.js';

/**
 * What one sidecar needs to know, compiled by the server from the resources and the
 * catalog: its inbound policy (mTLS mode, authorization rules) and every service it may
 * call with its identity and healthy endpoints. Sidecars follow it with a long poll:
 * `GET /v1/snapshot?after=VERSION` answers at once when the version moved past VERSION,
 * else when it does (or with 304 after the poll timeout).
 */
export interface Snapshot {
  readonly version: number;
  readonly service: string;
  readonly namespace: string;
  readonly spiffeId: string;
  readonly trustBundle: string;
  readonly inbound: {
    readonly protocol: 'http' | 'tcp';
    readonly mtls: 'strict' | 'permissive';
    readonly defaultAction: 'allow' | 'deny';
    /** The rules of every AuthorizationPolicy targeting this service, by policy name, in rule order. */
    readonly rules: readonly unknown[];
  };
  readonly services: readonly {
    readonly name: string;
    readonly namespace: string;
    readonly identity: string;
    readonly protocol: 'http' | 'tcp';
    readonly endpoints: readonly { readonly address: string; readonly port: number; readonly metadata: Readonly<Record<string, string>> }[];
  }[];
}

interface MeshSpec {
  mtls: { mode: 'strict' | 'permissive'; allowPermissive: boolean };
  authorization: { defaultAction: 'allow' | 'deny' };
}
interface ServiceSpec {
  protocol: 'http' | 'tcp';
  mtls?: { mode: 'strict' | 'permissive' };
}
interface PolicySpec {
  targetRef: { name: string };
  rules: unknown[];
}

/**
 * The version of "everything a snapshot is built from": it moves on every store change
 * (resources, registrations) and whenever the set of passing instances changes (a report,
 * or silence past the TTL, noticed by `recheck`). Waiters are woken when it moves.
 */
export class SnapshotFeed {
  readonly #store: Store;
  readonly #catalog: Catalog;
  readonly #trustDomain: string;
  readonly #bundlePem: () => string;
  #version = 1;
  #passing = '';
  #waiters = new Set<() => void>();
  #dispose: (() => void) | null = null;

  constructor(options: { store: Store; catalog: Catalog; trustDomain: string; bundlePem: () => string }) {
    this.#store = options.store;
    this.#catalog = options.catalog;
    this.#trustDomain = options.trustDomain;
    this.#bundlePem = options.bundlePem;
  }

  async start(): Promise<void> {
    this.#passing = await this.#passingSet();
    this.#dispose = await this.#store.watch(await this.#store.revision(), (event) => {
      if (event.type !== 'error') this.#bump();
    });
  }

  stop(): void {
    this.#dispose?.();
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
  }

  get version(): number {
    return this.#version;
  }

  /** Looks at the catalog's health again (after a report, and periodically for the TTL). */
  async recheck(): Promise<void> {
    const passing = await this.#passingSet();
    if (passing === this.#passing) return;
    this.#passing = passing;
    this.#bump();
  }

  /** Resolves when the version passes `after`, or after `timeoutMs` (then with false). */
  wait(after: number, timeoutMs: number): Promise<boolean> {
    if (this.#version > after) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (moved: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(moved);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(wake);
    });
  }

  /** The snapshot of `service` in `namespace` now. */
  async build(namespace: string, service: string): Promise<Snapshot> {
    const version = this.#version;
    const mesh = ((await this.#store.get('Mesh', MESH_NAMESPACE, 'default'))?.spec as unknown as MeshSpec | undefined) ?? {
      mtls: { mode: 'permissive', allowPermissive: true },
      authorization: { defaultAction: 'allow' },
    };
    const services = await this.#store.list('Service');
    const own = services.find((s) => s.namespace === namespace && s.name === service)?.spec as unknown as ServiceSpec | undefined;
    const wanted = own?.mtls?.mode ?? mesh.mtls.mode;
    const policies = (await this.#store.list('AuthorizationPolicy', namespace)).filter((p) => (p.spec as unknown as PolicySpec).targetRef.name === service);
    const instances = await this.#catalog.instances();
    return {
      version,
      service,
      namespace,
      spiffeId: serviceSpiffeId(this.#trustDomain, namespace, service),
      trustBundle: this.#bundlePem(),
      inbound: {
        protocol: own?.protocol ?? 'http',
        mtls: mesh.mtls.allowPermissive ? wanted : 'strict',
        defaultAction: mesh.authorization.defaultAction,
        rules: policies.flatMap((p) => (p.spec as unknown as PolicySpec).rules),
      },
      services: serviceNames(services, instances).map(({ name, namespace: ns }) => ({
        name,
        namespace: ns,
        identity: serviceSpiffeId(this.#trustDomain, ns, name),
        protocol: (services.find((s) => s.namespace === ns && s.name === name)?.spec as unknown as ServiceSpec | undefined)?.protocol ?? 'http',
        endpoints: instances
          .filter((i) => i.namespace === ns && i.service === name && i.health === 'passing')
          .map((i) => ({ address: i.address, port: i.port, metadata: i.metadata })),
      })),
    };
  }

  #bump(): void {
    this.#version++;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  async #passingSet(): Promise<string> {
    return (await this.#catalog.instances())
      .filter((i) => i.health === 'passing')
      .map((i) => `${i.namespace}/${i.id}`)
      .sort()
      .join(',');
  }
}

/** Every service known by a Service resource or a registered instance, sorted. */
function serviceNames(services: readonly StoredResource[], instances: readonly CatalogInstance[]): { name: string; namespace: string }[] {
  const keys = new Map<string, { name: string; namespace: string }>();
  for (const s of services) keys.set(`${s.namespace}/${s.name}`, { name: s.name, namespace: s.namespace });
  for (const i of instances) keys.set(`${i.namespace}/${i.service}`, { name: i.service, namespace: i.namespace });
  return [...keys.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
}
