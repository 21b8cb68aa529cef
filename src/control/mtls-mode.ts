import type { MeshSpec, ServiceSpec } from './resources.js';

/** How a service's inbound sidecar treats plaintext callers. */
export interface EffectiveMtls {
  readonly mode: 'strict' | 'permissive';
  /**
   * With mode strict: false is the strict dry run (plaintext still served, every refusal
   * strict mode would make logged and counted). Always true with mode permissive.
   */
  readonly enforce: boolean;
}

/** The Mesh a server has when no Mesh resource was applied. */
export const DEFAULT_MESH: MeshSpec = {
  mtls: { mode: 'permissive', allowPermissive: true },
  authorization: { defaultAction: 'allow' },
};

/**
 * A service's mTLS mode: its own `spec.mtls`, else the mesh's default; a mesh with
 * `allowPermissive: false` makes every service strict and enforced.
 */
export function effectiveMtls(mesh: MeshSpec | undefined, service: ServiceSpec | undefined): EffectiveMtls {
  const m = mesh ?? DEFAULT_MESH;
  if (!m.mtls.allowPermissive) return { mode: 'strict', enforce: true };
  const own = service?.mtls;
  if (own === undefined) return { mode: m.mtls.mode, enforce: true };
  return { mode: own.mode, enforce: own.mode === 'permissive' ? true : own.enforce };
}
