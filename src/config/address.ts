import { isIP } from 'node:net';

/** A parsed `host:port` listen or connect address. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Returns an error message
 * instead of throwing so that validation can list every problem at once.
 */
export function parseHostPort(text: string): HostPort | string {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return `"${text}" is not host:port; write for example 127.0.0.1:9001 or [::1]:9001`;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  const port = Number(m[3]);
  if (port > 65535) return `port ${port} is out of range (0-65535)`;
  if (m[1] !== undefined && isIP(host) !== 6) return `"${host}" is not an IPv6 address`;
  return { host, port };
}

/** Formats an address the way users write it (IPv6 hosts in brackets). */
export function formatHostPort(addr: HostPort): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

/** True for 127.0.0.0/8, ::1 and `localhost`. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
