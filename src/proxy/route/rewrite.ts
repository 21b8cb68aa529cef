import type { PathModifierConfig, RequestRedirectConfig, UrlRewriteConfig } from '../../config/route-schema.js';
import type { CompiledRedirect, CompiledRewrite, RequestView } from './types.js';

/**
 * URLRewrite and RequestRedirect filters (Gateway API HTTPRoute), compiled. A path
 * modifier is ReplaceFullPath (the path becomes a fixed value) or ReplacePrefixMatch (the
 * prefix the rule matched is replaced, the rest kept). The schema allows ReplacePrefixMatch
 * only on a rule with exactly one PathPrefix match, whose value the compiler passes here.
 */

/**
 * The path with `prefix` (a PathPrefix match value it matched, segment-wise) replaced by
 * `replacement`, as the Gateway API defines it: a trailing `/` on either is ignored, and
 * an empty result is `/`. E.g. prefix `/foo` on `/foo/bar`: replacement `/xyz` or `/xyz/`
 * gives `/xyz/bar`, `/` or `` gives `/bar`; on `/foo` itself, `/xyz` gives `/xyz` and `/`
 * gives `/`; on `/foo/`, `/xyz` gives `/xyz/`. Prefix `/` puts the replacement in front:
 * `/xyz` on `/a` gives `/xyz/a`, and on `/` gives `/xyz/` (what follows the prefix is kept).
 */
export function replacePrefixMatch(path: string, prefix: string, replacement: string): string {
  const keep = path.slice(trimSlash(prefix).length);
  const out = trimSlash(replacement) + keep;
  return out === '' ? '/' : out;
}

/** The value without one trailing `/` (`/` itself becomes empty). */
function trimSlash(value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value;
}

/** A path modifier as a function of the request path; null when there is none. */
function pathFunction(modifier: PathModifierConfig | undefined, prefix: string | null): ((path: string) => string) | null {
  if (modifier === undefined) return null;
  if (modifier.type === 'ReplaceFullPath') {
    const full = modifier.replaceFullPath;
    return () => full;
  }
  if (prefix === null) throw new Error('ReplacePrefixMatch needs the rule\'s PathPrefix match (the schema guarantees one)');
  const replacement = modifier.replacePrefixMatch;
  const p = trimSlash(prefix);
  // Only a path the rule matched reaches here; anything else is left as it is.
  return (path) => (path.startsWith(p) ? replacePrefixMatch(path, p, replacement) : path);
}

/**
 * Compiles a URLRewrite filter. `prefix` is the value of the rule's PathPrefix match (for
 * ReplacePrefixMatch), or null.
 */
export function compileRewrite(config: UrlRewriteConfig, prefix: string | null): CompiledRewrite {
  const rewrite = pathFunction(config.path, prefix);
  return Object.freeze({
    hostname: config.hostname ?? null,
    path: rewrite === null ? () => null : (req: RequestView) => rewrite(req.path),
  });
}

const WELL_KNOWN_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

/**
 * Compiles a RequestRedirect filter (`prefix` as for compileRewrite). The Location is
 * `scheme://hostname[:port]path[?query]`, each part from the filter or else the request:
 *
 * - scheme: the filter's, else the request's (`scheme` argument);
 * - hostname: the filter's, else the request's Host without its port;
 * - port: the filter's; else, when the filter sets a scheme, that scheme's port (80, 443);
 *   else the port of the request's Host, or the request scheme's port. It is left out when
 *   it is the scheme's own (http and 80, https and 443);
 * - path: modified by the filter's path, else the request's; the query is kept.
 */
export function compileRedirect(config: RequestRedirectConfig, prefix: string | null): CompiledRedirect {
  const rewrite = pathFunction(config.path, prefix);
  const fixedScheme = config.scheme ?? null;
  const fixedHost = config.hostname ?? null;
  const fixedPort = config.port ?? (fixedScheme !== null ? WELL_KNOWN_PORT[fixedScheme]! : null);
  return Object.freeze({
    status: config.statusCode,
    location(req: RequestView, scheme: string, host: string): string {
      const outScheme = fixedScheme ?? scheme;
      const split = splitHost(host);
      const name = fixedHost ?? (split < 0 ? host : host.slice(0, split));
      let port = fixedPort;
      if (port === null) port = split < 0 ? (WELL_KNOWN_PORT[scheme] ?? null) : Number(host.slice(split + 1));
      const showPort = port !== null && port !== WELL_KNOWN_PORT[outScheme];
      const path = rewrite === null ? req.path : rewrite(req.path);
      return `${outScheme}://${name}${showPort ? `:${port}` : ''}${path}${req.query === null ? '' : `?${req.query}`}`;
    },
  });
}

/** Index of the `:` before the port of a Host value (`name:port`, `[v6]:port`), or -1. */
function splitHost(host: string): number {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || colon === host.length - 1 || host.indexOf(']', colon) >= 0) return -1;
  for (let i = colon + 1; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
  }
  // A bare IPv6 address without brackets has several colons: no port.
  return host.charCodeAt(0) !== 0x5b /* [ */ && host.indexOf(':') !== colon ? -1 : colon;
}
