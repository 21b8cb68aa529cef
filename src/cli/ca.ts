import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { durationFlag, parseFlags, requiredFlag, usageError } from './args.js';
import { WeftError, isWeftError } from '../errors.js';
import { createIntermediate } from '../pki/ca.js';
import { caFiles, writeNewCaDir } from '../pki/ca-dir.js';
import { CERT_FILE_MODE, KEY_FILE_MODE, pathExists, refuseToOverwrite, writeFileAtomic } from '../pki/files.js';
import { issueLeaf, loadIssuerDir } from '../pki/issuer.js';
import { joinPem, splitPemCertificates } from '../pki/pem.js';
import { serviceSpiffeId, validateTrustDomain } from '../pki/spiffe.js';
import { certificateInfo, verifyChain, type CertificateInfo, type VerifyResult } from '../pki/verify.js';

/** Where a command writes its output; defaults to the process's stdout and stderr. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

const processIo: CommandIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

const USAGE = `Usage: weft ca <command> [flags]

Manage the certificate authority that gives every service its SPIFFE identity.

Commands:
  init          create a root CA and a first intermediate CA
  intermediate  create another intermediate CA (one per datacenter) from the root
  issue         issue a service certificate (X.509-SVID) from an intermediate
  inspect       show a certificate file and check it against a trust bundle

  weft ca init --out DIR --trust-domain TD [--root-ttl 87600h] [--intermediate-ttl 8760h] [--force]
      Writes DIR/root.pem, root.key, intermediate.pem, intermediate.key and bundle.pem.

  weft ca intermediate --root DIR --out DIR2 [--trust-domain TD] [--ttl 8760h] [--force]
      Signs a new intermediate with DIR/root.pem + root.key. Writes DIR2/intermediate.pem,
      intermediate.key and bundle.pem.

      Both accept --no-name-constraint: leave out the name constraint that limits the
      intermediate to the trust domain (only for peers whose TLS library rejects it).

  weft ca issue --issuer DIR --service NAME --out DIR3 [--namespace default] [--ttl 24h] [--trust-domain TD]
      Issues spiffe://TD/ns/NAMESPACE/svc/NAME. Writes DIR3/cert.pem (certificate + chain),
      key.pem and bundle.pem.

  weft ca inspect FILE [--bundle FILE] [--json]
      Shows the certificates in FILE and whether they verify against the bundle (--bundle,
      or a bundle.pem next to FILE). Exits 1 when verification fails or the certificate expired.

Key files are written with mode 0600. See docs/pki.md.
`;

type Io = CommandIo;

/**
 * Runs `weft ca <argv…>` and resolves to the process exit code: 0 success, 1 failure
 * (including a certificate that does not verify), 2 usage error. Writes results to
 * `io.stdout` and problems to `io.stderr`; never throws for user errors.
 */
export async function caCommand(argv: string[], io: CommandIo = processIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) {
    io.stderr(USAGE);
    return 2;
  }
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const commands: Record<string, (args: string[], io: Io) => Promise<number>> = {
    init: initCommand,
    intermediate: intermediateCommand,
    issue: issueCommand,
    inspect: inspectCommand,
  };
  const command = commands[sub];
  if (!command) {
    io.stderr(`weft ca: unknown command "${sub}"; expected init, intermediate, issue or inspect (see \`weft ca --help\`)\n`);
    return 2;
  }
  try {
    return await command(rest, io);
  } catch (err) {
    if (isWeftError(err)) {
      io.stderr(`weft ca ${sub}: ${err.message} [${err.code}]\n`);
      return err.code === 'WEFT_E_USAGE' ? 2 : 1;
    }
    io.stderr(`weft ca ${sub}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

async function initCommand(args: string[], io: Io): Promise<number> {
  const { values } = parse('init', args, {
    out: { type: 'string' },
    'trust-domain': { type: 'string' },
    'root-ttl': { type: 'string', default: '87600h' },
    'intermediate-ttl': { type: 'string', default: '8760h' },
    'no-name-constraint': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return help(io, 'weft ca init --out DIR --trust-domain TD [--root-ttl 87600h] [--intermediate-ttl 8760h] [--no-name-constraint] [--force]');
  const out = required('init', values.out, '--out', 'the directory to write the CA into');
  const trustDomain = required('init', values['trust-domain'], '--trust-domain', 'e.g. --trust-domain example.org');
  validateTrustDomain(trustDomain);
  const rootTtl = durationFlag('--root-ttl', values['root-ttl']);
  const intermediateTtl = durationFlag('--intermediate-ttl', values['intermediate-ttl']);
  const files = caFiles(out);
  if (!values.force) {
    await refuseToOverwrite(
      [files.rootKey, files.intermediateKey],
      'refusing to replace an existing CA key (every certificate it signed would stop being trusted); pass --force to do it anyway',
    );
  }

  const written = await writeNewCaDir(out, { trustDomain, rootTtlMs: rootTtl, intermediateTtlMs: intermediateTtl, nameConstraint: !values['no-name-constraint'] });
  const rootInfo = certificateInfo(written.rootPem);
  const interInfo = certificateInfo(written.intermediatePem);
  io.stdout(
    `Created a CA for trust domain ${trustDomain} in ${out}:\n` +
      table([
        [files.rootCert, `root CA certificate, valid until ${day(rootInfo.notAfter)}`],
        [files.rootKey, 'root CA private key (mode 0600)'],
        [files.intermediateCert, `intermediate CA certificate, valid until ${day(interInfo.notAfter)}`],
        [files.intermediateKey, 'intermediate CA private key (mode 0600)'],
        [files.bundle, 'trust bundle (the root certificate): give it to every sidecar'],
      ]) +
      `\nNext: issue certificates with \`weft ca issue --issuer ${out} --service NAME --out DIR\`, or point sidecars at\n` +
      `${out} (identity.issuer.dir). Move ${files.rootKey} offline once you have made the intermediates you need.\n`,
  );
  return 0;
}

async function intermediateCommand(args: string[], io: Io): Promise<number> {
  const { values } = parse('intermediate', args, {
    root: { type: 'string' },
    out: { type: 'string' },
    'trust-domain': { type: 'string' },
    ttl: { type: 'string', default: '8760h' },
    'no-name-constraint': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return help(io, 'weft ca intermediate --root DIR --out DIR2 [--trust-domain TD] [--ttl 8760h] [--no-name-constraint] [--force]');
  const rootDir = required('intermediate', values.root, '--root', 'the directory holding root.pem and root.key');
  const out = required('intermediate', values.out, '--out', 'the directory to write the intermediate into');
  const ttlMs = durationFlag('--ttl', values.ttl);
  const files = caFiles(out);
  if (!values.force) {
    await refuseToOverwrite([files.intermediateKey], 'refusing to replace an existing intermediate key; pass --force to do it anyway');
  }

  const root = await loadIssuerDir(rootDir, { role: 'root' });
  const trustDomain = values['trust-domain'] ?? root.trustDomain;
  if (trustDomain === null) {
    throw usage('intermediate', `the root in ${rootDir} does not name a trust domain; pass --trust-domain TD`);
  }
  validateTrustDomain(trustDomain);
  if (root.trustDomain !== null && root.trustDomain !== trustDomain) {
    io.stderr(`warning: the root is for trust domain ${root.trustDomain}; creating an intermediate for ${trustDomain}\n`);
  }
  const intermediate = await createIntermediate({ root, trustDomain, ttlMs, nameConstraint: !values['no-name-constraint'] });
  await writeFileAtomic(files.intermediateKey, intermediate.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(files.intermediateCert, joinPem([intermediate.certPem, ...root.chainPems]), CERT_FILE_MODE);
  await writeFileAtomic(files.bundle, joinPem(root.bundlePems), CERT_FILE_MODE);

  const info = certificateInfo(intermediate.certPem);
  const clamped = info.notAfter.getTime() === root.notAfter.getTime() ? ' (cut short: the root expires then)' : '';
  io.stdout(
    `Created an intermediate CA for trust domain ${trustDomain} in ${out}:\n` +
      table([
        [files.intermediateCert, `intermediate CA certificate, valid until ${day(info.notAfter)}${clamped}`],
        [files.intermediateKey, 'intermediate CA private key (mode 0600)'],
        [files.bundle, 'trust bundle (the root certificate)'],
      ]),
  );
  return 0;
}

async function issueCommand(args: string[], io: Io): Promise<number> {
  const { values } = parse('issue', args, {
    issuer: { type: 'string' },
    service: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    ttl: { type: 'string', default: '24h' },
    'trust-domain': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) {
    return help(io, 'weft ca issue --issuer DIR --service NAME --out DIR3 [--namespace default] [--ttl 24h] [--trust-domain TD]');
  }
  const issuerDir = required('issue', values.issuer, '--issuer', 'a directory made by `weft ca init` or `weft ca intermediate`');
  const service = required('issue', values.service, '--service', 'the service name, e.g. --service web');
  const out = required('issue', values.out, '--out', 'the directory to write cert.pem, key.pem and bundle.pem into');
  const ttlMs = durationFlag('--ttl', values.ttl);

  const issuer = await loadIssuerDir(issuerDir);
  const trustDomain = values['trust-domain'] ?? issuer.trustDomain;
  if (trustDomain === null) {
    throw usage('issue', `the issuer in ${issuerDir} does not name a trust domain; pass --trust-domain TD`);
  }
  const spiffeId = serviceSpiffeId(trustDomain, values.namespace, service);
  const leaf = await issueLeaf(issuer, { spiffeId, ttlMs });
  const files = { cert: join(out, 'cert.pem'), key: join(out, 'key.pem'), bundle: join(out, 'bundle.pem') };
  await writeFileAtomic(files.key, leaf.keyPem, KEY_FILE_MODE);
  await writeFileAtomic(files.cert, leaf.certPem, CERT_FILE_MODE);
  await writeFileAtomic(files.bundle, joinPem(issuer.bundlePems), CERT_FILE_MODE);

  const clamped =
    leaf.notAfter.getTime() < leaf.notBefore.getTime() + ttlMs && leaf.notAfter.getTime() === issuer.notAfter.getTime()
      ? ` (cut short: the issuer expires then)`
      : '';
  io.stdout(
    `Issued ${spiffeId}\n` +
      table([
        [files.cert, `certificate + chain, serial ${leaf.serial}, valid until ${leaf.notAfter.toISOString()}${clamped}`],
        [files.key, 'private key (mode 0600)'],
        [files.bundle, 'trust bundle'],
      ]),
  );
  return 0;
}

async function inspectCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(
    'inspect',
    args,
    {
      bundle: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    true,
  );
  if (values.help) return help(io, 'weft ca inspect FILE [--bundle FILE] [--json]');
  if (positionals.length !== 1) {
    throw usage('inspect', positionals.length === 0 ? 'give the certificate file to inspect' : `give one file, got ${positionals.length}`);
  }
  const file = positionals[0]!;
  const certs = splitPemCertificates(await readText(file), `"${file}"`);
  const infos = certs.map((pem) => certificateInfo(pem));
  const leaf = infos[0]!;

  let bundleFile = values.bundle ?? null;
  if (bundleFile === null) {
    const sibling = join(dirname(file), 'bundle.pem');
    if (resolve(sibling) !== resolve(file) && (await pathExists(sibling))) bundleFile = sibling;
  }
  const now = new Date();
  const verification: VerifyResult | null =
    bundleFile === null ? null : verifyChain({ certPems: certs, bundlePems: [await readText(bundleFile)], now });
  const expired = now > leaf.notAfter;

  if (values.json) {
    io.stdout(
      `${JSON.stringify(
        {
          file,
          certificates: infos.map(jsonInfo),
          expired,
          ...(bundleFile !== null && verification !== null ? { bundle: bundleFile, verification } : {}),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const rows: Array<[string, string]> = [
      ['file', file],
      ['spiffe id', leaf.spiffeIds.length > 0 ? leaf.spiffeIds.join(', ') : '(none)'],
      ['subject', leaf.subject],
      ['issuer', leaf.issuer],
      ['serial', leaf.serial],
      ['key', leaf.keyType],
      ['not before', leaf.notBefore.toISOString()],
      ['not after', `${leaf.notAfter.toISOString()} (${remaining(leaf.notAfter, now)})`],
      ['sha-256', leaf.fingerprint256],
    ];
    let text = table(rows);
    text += `certificates in ${file}:\n`;
    infos.forEach((info, i) => {
      text += `  [${i}] ${info.subject}${info.isCA ? ' (CA)' : ''}\n`;
      text += `      issued by ${info.issuer}; ${remaining(info.notAfter, now)}\n`;
    });
    if (verification !== null) {
      text += verification.ok
        ? `verifies against bundle: yes (${bundleFile})\n  path: ${verification.chain.join('\n     → ')}\n`
        : `verifies against bundle: no (${verification.reason}) (${bundleFile})\n`;
    } else {
      text += 'verifies against bundle: not checked (pass --bundle FILE)\n';
    }
    io.stdout(text);
  }
  return (verification !== null && !verification.ok) || expired ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// helpers

function parse<O extends Parameters<typeof parseFlags>[2]>(command: string, args: string[], options: O, allowPositionals = false) {
  return parseFlags(`ca ${command}`, args, options, allowPositionals);
}

function usage(command: string, message: string): WeftError {
  return usageError(`ca ${command}`, message);
}

function required(command: string, value: string | undefined, flag: string, what: string): string {
  return requiredFlag(`ca ${command}`, value, flag, what);
}

function help(io: Io, line: string): number {
  io.stdout(`Usage: ${line}\n\nRun \`weft ca --help\` for all commands.\n`);
  return 0;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WeftError('WEFT_E_PEM_FILE', `cannot read "${file}": ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}


function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}\n`).join('');
}

function day(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** "expires in 23h 59m" or "EXPIRED 2d 3h ago". */
function remaining(notAfter: Date, now: Date): string {
  const ms = notAfter.getTime() - now.getTime();
  return ms >= 0 ? `expires in ${span(ms)}` : `EXPIRED ${span(-ms)} ago`;
}

function span(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return h > 0 ? `${d}d ${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h ${m}m` : `${h}h`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function jsonInfo(info: CertificateInfo) {
  return { ...info, notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString() };
}
