import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { WeftError } from '../errors.js';
import type { Coordination, JsonValue, Store, StoredResource } from './store/store.js';
import { StoreConflictError } from './store/errors.js';

/**
 * The catalog: which instances of which service exist, and which are healthy. A sidecar
 * registers its instance (the address and mTLS port callers reach it on, and metadata such
 * as `version`) as an `Instance` resource in the store, so it survives a server restart and
 * every replica sees it. The instance's health is in the resource too (`healthy`, `reason`),
 * written only when it changes: a change is a store revision, which every replica's
 * snapshot feed hears of. Liveness is the sidecar's reports, kept as heartbeats
 * (`Coordination.beat`, outside the revision history: a report every few seconds per
 * instance would otherwise be a revision each). A new registration is `unknown` until its
 * first report. The leader's `sweep` marks critical the instances silent for `ttlMs`, and
 * removes those silent for `deregisterAfterMs`, so addresses that went away do not stay.
 * A server with no heartbeat of an instance (a restarted single server) counts its silence
 * from its own start, so a control plane restart never empties the mesh.
 */

const KIND = 'Instance';
/** A bound on what one service's certificate can put into its callers' endpoint sets. */
export const MAX_INSTANCES_PER_SERVICE = 1000;

export type Health = 'passing' | 'critical' | 'unknown';

/** What a sidecar registers. */
export interface InstanceRegistration {
  readonly service: string;
  readonly namespace: string;
  readonly address: string;
  readonly port: number;
  readonly metadata: Readonly<Record<string, string>>;
}

/** An instance as the catalog reports it. */
export interface CatalogInstance extends InstanceRegistration {
  readonly id: string;
  readonly health: Health;
  /** Why it is critical (the app's check, or the missing reports). */
  readonly reason: string | null;
  /** Milliseconds since its sidecar last reported, or null when no report is known. */
  readonly lastReportMsAgo: number | null;
}

/** The spec of an Instance resource. */
interface InstanceSpec {
  service: string;
  address: string;
  port: number;
  metadata: Record<string, string>;
  /** null: no report yet. */
  healthy: boolean | null;
  reason?: string | null;
}

export class Catalog {
  readonly #store: Store & Coordination;
  readonly #ttlMs: number;
  readonly #deregisterAfterMs: number;
  readonly #now: () => number;
  readonly #started: number;

  constructor(store: Store & Coordination, options: { ttlMs: number; deregisterAfterMs: number; now?: () => number }) {
    this.#store = store;
    this.#ttlMs = options.ttlMs;
    this.#deregisterAfterMs = options.deregisterAfterMs;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** Registers (or updates) an instance; its id is stable for the same service, address and port. */
  async register(reg: InstanceRegistration): Promise<string> {
    const id = instanceId(reg);
    const existing = await this.#store.get(KIND, reg.namespace, id);
    if (existing === undefined) {
      const count = (await this.#store.list(KIND, reg.namespace)).filter((r) => (r.spec as { service?: string }).service === reg.service).length;
      if (count >= MAX_INSTANCES_PER_SERVICE) {
        throw new WeftError('WEFT_E_TOO_MANY_INSTANCES', `${reg.namespace}/${reg.service} already has ${count} instances (the most one service may register); deregister stale ones or wait for them to expire`);
      }
    }
    // A sidecar registering again (its restart) keeps the health it had until its first report.
    const before = existing?.spec as unknown as InstanceSpec | undefined;
    const spec: InstanceSpec = { service: reg.service, address: reg.address, port: reg.port, metadata: { ...reg.metadata }, healthy: before?.healthy ?? null, reason: before?.reason ?? null };
    await this.#store.put({ kind: KIND, namespace: reg.namespace, name: id, spec: spec as unknown as JsonValue });
    await this.#store.beat(key(reg.namespace, id));
    return id;
  }

  /**
   * Records a report from an instance's sidecar: the app's health. Returns false when the
   * instance is not registered (the sidecar must register again).
   */
  async report(namespace: string, id: string, service: string, healthy: boolean, reason: string | null): Promise<boolean> {
    const stored = await this.#store.get(KIND, namespace, id);
    if (stored === undefined || (stored.spec as { service?: string }).service !== service) return false;
    await this.#store.beat(key(namespace, id));
    const spec = stored.spec as unknown as InstanceSpec;
    const why = healthy ? null : (reason ?? 'the app failed its health check');
    if (spec.healthy !== healthy || (spec.reason ?? null) !== why) {
      await this.#write(namespace, id, { ...spec, healthy, reason: why }, stored.revision);
    }
    return true;
  }

  /** Removes an instance (its sidecar shuts down). */
  async deregister(namespace: string, id: string, service: string): Promise<boolean> {
    const stored = await this.#store.get(KIND, namespace, id);
    if (stored === undefined || (stored.spec as { service?: string }).service !== service) return false;
    await this.#store.forget(key(namespace, id));
    return this.#store.delete(KIND, namespace, id);
  }

  /**
   * Leader work, about once a second: instances silent for the TTL become critical, those
   * silent for the deregistration time are removed. Returns the ids removed.
   */
  async sweep(): Promise<string[]> {
    const beats = await this.#store.beats();
    const sinceStart = this.#now() - this.#started;
    const removed: string[] = [];
    for (const r of await this.#store.list(KIND)) {
      const k = key(r.namespace, r.name);
      const silent = beats.get(k) ?? sinceStart;
      const spec = r.spec as unknown as InstanceSpec;
      if (silent > this.#deregisterAfterMs) {
        await this.#store.forget(k);
        if (await this.#store.delete(KIND, r.namespace, r.name, { expectedRevision: r.revision }).catch(ignoreConflict)) removed.push(k);
      } else if (silent > this.#ttlMs && spec.healthy !== false) {
        await this.#write(r.namespace, r.name, { ...spec, healthy: false, reason: `no report from its sidecar for ${Math.round(silent / 1000)}s` }, r.revision);
      }
    }
    return removed;
  }

  /** Every instance (of one namespace when given), with its health now. */
  async instances(namespace?: string): Promise<CatalogInstance[]> {
    const [list, beats] = await Promise.all([this.#store.list(KIND, namespace), this.#store.beats()]);
    return list.map((r) => view(r, beats.get(key(r.namespace, r.name))));
  }

  /** Instances grouped by service (sorted by namespace/service, then address:port), with the count passing. */
  async services(): Promise<{ service: string; namespace: string; passing: number; instances: CatalogInstance[] }[]> {
    const services = new Map<string, { service: string; namespace: string; passing: number; instances: CatalogInstance[] }>();
    for (const i of await this.instances()) {
      const k = `${i.namespace}/${i.service}`;
      let entry = services.get(k);
      if (entry === undefined) services.set(k, (entry = { service: i.service, namespace: i.namespace, passing: 0, instances: [] }));
      entry.instances.push(i);
      if (i.health === 'passing') entry.passing++;
    }
    const list = [...services.values()].sort((a, b) => `${a.namespace}/${a.service}`.localeCompare(`${b.namespace}/${b.service}`));
    for (const entry of list) entry.instances.sort((a, b) => `${a.address}:${a.port}`.localeCompare(`${b.address}:${b.port}`, 'en', { numeric: true }));
    return list;
  }

  /** Writes a health change unless the instance changed meanwhile (another report or replica wrote first: that one stands). */
  async #write(namespace: string, id: string, spec: InstanceSpec, revision: number): Promise<void> {
    await this.#store.put({ kind: KIND, namespace, name: id, spec: spec as unknown as JsonValue }, { expectedRevision: revision }).catch(ignoreConflict);
  }
}

function view(r: StoredResource, lastBeatMsAgo: number | undefined): CatalogInstance {
  const spec = r.spec as unknown as InstanceSpec;
  const health: Health = spec.healthy === true ? 'passing' : spec.healthy === false ? 'critical' : 'unknown';
  return {
    id: r.name,
    service: spec.service,
    namespace: r.namespace,
    address: spec.address,
    port: spec.port,
    metadata: spec.metadata,
    health,
    reason: health === 'critical' ? (spec.reason ?? 'the app failed its health check') : null,
    lastReportMsAgo: lastBeatMsAgo === undefined ? null : Math.round(lastBeatMsAgo),
  };
}

function ignoreConflict(err: unknown): false {
  if (err instanceof StoreConflictError) return false;
  throw err;
}

/** A registration from untrusted JSON, or the problem with it. */
export function registrationProblem(body: Record<string, unknown>): string | null {
  const { address, port, metadata } = body;
  if (typeof address !== 'string' || isIP(address) === 0) return '"address" must be the IP address callers reach the instance on';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return '"port" must be the mTLS port (1-65535)';
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return '"metadata" must be an object of strings';
    const entries = Object.entries(metadata);
    if (entries.length > 32 || entries.some(([k, v]) => typeof v !== 'string' || !/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/i.test(k) || v.length > 253)) {
      return '"metadata": at most 32 entries, names of letters, digits, ".", "_" or "-", string values up to 253 characters';
    }
  }
  return null;
}

function instanceId(reg: InstanceRegistration): string {
  return `${reg.service}-${createHash('sha256').update(`${reg.address}:${reg.port}`).digest('hex').slice(0, 12)}`;
}

function key(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}
