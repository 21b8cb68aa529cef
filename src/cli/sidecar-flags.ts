import { parseArgs } from 'node:util';
import type { RawConfig } from '../config/load.js';
import { WeftError } from '../errors.js';

/** Flags shared by `weft sidecar` and `weft run`, each mapping onto a config field. */
export const SIDECAR_FLAGS = {
  config: { type: 'string', short: 'c' },
  service: { type: 'string' },
  namespace: { type: 'string' },
  'trust-domain': { type: 'string' },
  inbound: { type: 'string' },
  app: { type: 'string' },
  protocol: { type: 'string' },
  mtls: { type: 'string' },
  allow: { type: 'string', multiple: true },
  upstream: { type: 'string', multiple: true },
  issuer: { type: 'string' },
  'issuer-cert': { type: 'string' },
  'issuer-key': { type: 'string' },
  'trust-bundle': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  bundle: { type: 'string' },
  ttl: { type: 'string' },
  admin: { type: 'string' },
  'drain-timeout': { type: 'string' },
  'access-log': { type: 'string' },
  'access-log-sampling': { type: 'string' },
  'trace-endpoint': { type: 'string' },
  'trace-sampling': { type: 'string' },
  server: { type: 'string', multiple: true },
  token: { type: 'string' },
  state: { type: 'string' },
  advertise: { type: 'string' },
  meta: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SIDECAR_USAGE = `weft sidecar [-c FILE] [flags]

Every flag has a WEFT_* environment variable; flags win over variables, which win over the file.
  -c, --config FILE            YAML config file (docs/sidecar.md)

Connected mode (docs/control-plane.md): the server signs the certificate and sends the config.
  --server URL                 WEFT_SERVER         https://HOST:PORT of weft server (repeat for replicas)
  --token TOKEN                WEFT_TOKEN          join token (\`weft token create\`), for the first enrollment
  --state DIR                  WEFT_STATE          keeps the certificate and last-known-good config (required)
  --advertise IP               WEFT_ADVERTISE      address callers reach this instance on (default: toward the server)
  --meta KEY=VALUE             WEFT_META           instance metadata, e.g. version=v2 (repeat)
  --upstream NAME=LISTEN       WEFT_UPSTREAMS      call service NAME at LISTEN, e.g. api=127.0.0.1:9001

Static mode and both:
  --service NAME               WEFT_SERVICE        this service's name
  --namespace NS               WEFT_NAMESPACE      default: default
  --trust-domain TD            WEFT_TRUST_DOMAIN   default: from the issuer or certificate
  --inbound ADDR               WEFT_INBOUND        mTLS listen address, e.g. 0.0.0.0:8443
  --app ADDR                   WEFT_APP            the app's plaintext address, e.g. 127.0.0.1:8080
  --protocol P                 WEFT_PROTOCOL       inbound protocol: http, http2, grpc, tcp or auto (default auto: detected)
  --mtls strict|permissive     WEFT_MTLS           default strict
  --allow SPIFFE_ID            WEFT_ALLOW          allowed callers (repeat; variable: space-separated)
  --upstream NAME=LISTEN=EP[,EP][=tcp]  WEFT_UPSTREAMS  static upstream (repeat; variable: space-separated)
  --issuer DIR                 WEFT_ISSUER_DIR     self-issue from a \`weft ca\` folder
  --issuer-cert F|PEM          WEFT_ISSUER_CERT    self-issue from an intermediate (file or PEM text)
  --issuer-key F|PEM           WEFT_ISSUER_KEY
  --trust-bundle F|PEM         WEFT_TRUST_BUNDLE
  --cert F --key F --bundle F  WEFT_CERT_FILE WEFT_KEY_FILE WEFT_BUNDLE_FILE  certificate files (watched)
  --ttl DURATION               WEFT_TTL            self-issued certificate lifetime (default 24h)
  --admin ADDR                 WEFT_ADMIN          admin endpoint (default 127.0.0.1:15000)
  --drain-timeout DURATION     WEFT_DRAIN_TIMEOUT  default 15s

Observability (docs/observability.md):
  --access-log stdout|off|FILE WEFT_ACCESS_LOG     one JSON line per request or TCP connection (default stdout)
  --access-log-sampling F      WEFT_ACCESS_LOG_SAMPLING  share of requests logged, 0 to 1 (default 1)
  --trace-endpoint URL         WEFT_TRACE_ENDPOINT OTLP/HTTP traces URL (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  --trace-sampling F           WEFT_TRACE_SAMPLING share of new traces recorded, 0 to 1 (default 0.01)`;

type FlagValues = { [K in keyof typeof SIDECAR_FLAGS]?: (typeof SIDECAR_FLAGS)[K] extends { multiple: true } ? string[] : (typeof SIDECAR_FLAGS)[K] extends { type: 'boolean' } ? boolean : string };

/** Parses sidecar flags; throws WEFT_E_USAGE naming the bad flag. */
export function parseSidecarFlags(argv: string[]): FlagValues {
  try {
    return parseArgs({ args: argv, options: SIDECAR_FLAGS, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (err) {
    throw new WeftError('WEFT_E_USAGE', `${(err as Error).message}\n\n${SIDECAR_USAGE}`);
  }
}

/**
 * Turns flags and WEFT_* variables into a config overlay shaped like the YAML file, plus
 * the name of the flag or variable behind each top-level field (for error messages).
 */
export function sidecarOverrides(flags: FlagValues, env: NodeJS.ProcessEnv): { overrides: RawConfig; sources: Map<string, string> } {
  const overrides: RawConfig = {};
  const sources = new Map<string, string>();
  const pick = (flag: keyof FlagValues, variable: string): { value: string; from: string } | null => {
    const v = flags[flag];
    if (typeof v === 'string') return { value: v, from: `--${flag}` };
    const e = env[variable];
    return e !== undefined && e !== '' ? { value: e, from: variable } : null;
  };
  const set = (path: string[], found: { value: unknown; from: string } | null) => {
    if (found === null) return;
    let obj = overrides;
    for (const key of path.slice(0, -1)) obj = (obj[key] ??= {}) as RawConfig;
    obj[path[path.length - 1]!] = found.value;
    if (!sources.has(path[0]!)) sources.set(path[0]!, found.from);
    sources.set(path.join('.'), found.from);
  };
  set(['service'], pick('service', 'WEFT_SERVICE'));
  set(['namespace'], pick('namespace', 'WEFT_NAMESPACE'));
  set(['trustDomain'], pick('trust-domain', 'WEFT_TRUST_DOMAIN'));
  set(['inbound', 'listen'], pick('inbound', 'WEFT_INBOUND'));
  set(['inbound', 'app'], pick('app', 'WEFT_APP'));
  set(['inbound', 'protocol'], pick('protocol', 'WEFT_PROTOCOL'));
  set(['inbound', 'mtls'], pick('mtls', 'WEFT_MTLS'));
  const allow = flags.allow ?? splitList(env['WEFT_ALLOW']);
  if (allow) set(['inbound', 'allow'], { value: allow, from: flags.allow ? '--allow' : 'WEFT_ALLOW' });
  const upstreams = flags.upstream ?? splitList(env['WEFT_UPSTREAMS']);
  if (upstreams) set(['upstreams'], { value: upstreams.map(parseUpstreamFlag), from: flags.upstream ? '--upstream' : 'WEFT_UPSTREAMS' });
  set(['identity', 'issuer', 'dir'], pick('issuer', 'WEFT_ISSUER_DIR'));
  set(['identity', 'issuer', 'cert'], pick('issuer-cert', 'WEFT_ISSUER_CERT'));
  set(['identity', 'issuer', 'key'], pick('issuer-key', 'WEFT_ISSUER_KEY'));
  set(['identity', 'files', 'cert'], pick('cert', 'WEFT_CERT_FILE'));
  set(['identity', 'files', 'key'], pick('key', 'WEFT_KEY_FILE'));
  set(['identity', 'files', 'bundle'], pick('bundle', 'WEFT_BUNDLE_FILE'));
  // The trust bundle goes with whichever identity source the flags chose.
  const identity = overrides['identity'] as RawConfig | undefined;
  const bundleFor = identity?.['issuer'] ? 'issuer' : identity?.['files'] ? 'files' : null;
  if (bundleFor !== null) set(['identity', bundleFor, 'bundle'], pick('trust-bundle', 'WEFT_TRUST_BUNDLE'));
  set(['identity', 'ttl'], pick('ttl', 'WEFT_TTL'));
  const admin = pick('admin', 'WEFT_ADMIN');
  if (admin) set(['admin'], { value: { listen: admin.value }, from: admin.from });
  set(['drainTimeout'], pick('drain-timeout', 'WEFT_DRAIN_TIMEOUT'));
  const accessLog = pick('access-log', 'WEFT_ACCESS_LOG');
  if (accessLog !== null) {
    if (accessLog.value === 'off') set(['observability', 'accessLog', 'enabled'], { value: false, from: accessLog.from });
    else set(['observability', 'accessLog', 'path'], accessLog);
  }
  set(['observability', 'accessLog', 'sampling'], pick('access-log-sampling', 'WEFT_ACCESS_LOG_SAMPLING'));
  const traceEndpoint = pick('trace-endpoint', 'WEFT_TRACE_ENDPOINT') ?? (env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] ? { value: env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'], from: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' } : null);
  set(['observability', 'tracing', 'endpoint'], traceEndpoint);
  set(['observability', 'tracing', 'sampling'], pick('trace-sampling', 'WEFT_TRACE_SAMPLING'));
  const servers = flags.server ?? splitList(env['WEFT_SERVER']);
  if (servers) set(['server', 'urls'], { value: servers, from: flags.server ? '--server' : 'WEFT_SERVER' });
  set(['server', 'token'], pick('token', 'WEFT_TOKEN'));
  set(['server', 'state'], pick('state', 'WEFT_STATE'));
  set(['server', 'advertise'], pick('advertise', 'WEFT_ADVERTISE'));
  const meta = flags.meta ?? splitList(env['WEFT_META']);
  if (meta) set(['server', 'metadata'], { value: Object.fromEntries(meta.map(parseMetaFlag)), from: flags.meta ? '--meta' : 'WEFT_META' });
  return { overrides, sources };
}

function splitList(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return value.trim().split(/\s+/);
}

/**
 * `NAME=LISTEN` (connected mode: the endpoints come from the catalog) or
 * `NAME=LISTEN=ENDPOINT[,ENDPOINT…][=PROTOCOL]` (static) → an upstream entry (validated
 * later with the rest of the config). Throws WEFT_E_USAGE when the value has neither shape.
 */
export function parseUpstreamFlag(text: string): RawConfig {
  const parts = text.split('=');
  if (parts.length < 2 || parts.length > 4) {
    throw new WeftError(
      'WEFT_E_USAGE',
      `--upstream "${text}": write NAME=LISTEN (connected to a server), or NAME=LISTEN=ENDPOINT[,ENDPOINT...][=tcp], e.g. api=127.0.0.1:9001=198.18.0.2:8443`,
    );
  }
  const [name, listen, endpoints, protocol] = parts as [string, string, string | undefined, string | undefined];
  const entry: RawConfig = { name, listen };
  if (endpoints !== undefined) entry['endpoints'] = endpoints.split(',').filter((e) => e !== '');
  if (protocol !== undefined) entry['protocol'] = protocol;
  return entry;
}

/** `KEY=VALUE` → [key, value]; throws WEFT_E_USAGE otherwise. */
function parseMetaFlag(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new WeftError('WEFT_E_USAGE', `--meta "${text}": write KEY=VALUE, e.g. version=v2`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}
