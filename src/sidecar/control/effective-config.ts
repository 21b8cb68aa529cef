import type { EndpointConfig, SidecarConfig } from '../../config/sidecar-schema.js';
import type { Snapshot, SnapshotService } from '../../control/snapshot.js';

/**
 * A connected sidecar's configuration: the local part (listen addresses, the app, the
 * upstreams it calls, limits) completed with the server's snapshot (the inbound protocol
 * and mTLS mode or strict dry run, the authorization policies, each upstream's identity,
 * protocol and healthy endpoints). The result
 * has the static configuration's shape, so both modes compile and reload the same way.
 * An upstream the snapshot does not know gets no endpoints (its callers get 503 until an
 * instance is healthy).
 */
export function effectiveConfig(local: SidecarConfig, snapshot: Snapshot): SidecarConfig {
  const inbound =
    local.inbound === undefined
      ? undefined
      : {
          ...local.inbound,
          protocol: snapshot.inbound.protocol,
          mtls: snapshot.inbound.mtls.mode,
          strictDryRun: snapshot.inbound.mtls.mode === 'strict' && !snapshot.inbound.mtls.enforce,
          trafficPolicy: snapshot.inbound.rateLimit == null ? undefined : { rateLimit: snapshot.inbound.rateLimit },
          authorization: {
            defaultAction: snapshot.inbound.authorization.defaultAction,
            rules: [],
            policies: snapshot.inbound.authorization.policies.map((p) => ({ name: p.name, rules: [...p.rules] })),
          },
        };
  const upstreams = local.upstreams.map((u) => {
    const namespace = u.namespace ?? local.namespace;
    const service = snapshot.services.find((s) => s.name === u.name && s.namespace === namespace);
    return {
      ...u,
      protocol: u.protocol ?? service?.protocol ?? 'auto',
      identity: service?.identity,
      endpoints: service === undefined ? [] : endpointsOf(service),
      trafficPolicy: service?.trafficPolicy ?? undefined,
      routes: service?.routes ?? [],
    };
  });
  const meshServices = snapshot.services.map((s) => ({ name: s.name, namespace: s.namespace, identity: s.identity, endpoints: endpointsOf(s), trafficPolicy: s.trafficPolicy ?? undefined }));
  return { ...local, trustDomain: snapshot.trustDomain, inbound, upstreams, meshServices };
}

/** A snapshot service's endpoints as configuration: the instance metadata (subsets) and its `weight` (default 1). */
function endpointsOf(service: SnapshotService): EndpointConfig[] {
  return service.endpoints.map((e) => {
    const weight = Number(e.metadata['weight']);
    return { address: { host: e.address, port: e.port }, metadata: { ...e.metadata }, weight: Number.isInteger(weight) && weight >= 1 && weight <= 1000 ? weight : 1 };
  });
}
