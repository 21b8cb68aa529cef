import { readFile } from 'node:fs/promises';
import { WeftError } from '../errors.js';

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Splits PEM text into its certificate blocks, in order, each a full
 * `-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----` block ending in a newline.
 * Anything between blocks (comments, keys, `openssl x509 -text` output) is ignored.
 * Throws WEFT_E_PEM when there is no certificate block. `what` names the input in the error
 * (a file name, say).
 */
export function splitPemCertificates(pem: string, what = 'the input'): string[] {
  const blocks = (pem.match(CERT_BLOCK) ?? []).map((b) => `${b.replace(/\r\n/g, '\n')}\n`);
  if (blocks.length === 0) {
    throw new WeftError(
      'WEFT_E_PEM',
      `${what} contains no PEM certificate; expected one or more "-----BEGIN CERTIFICATE-----" blocks`,
    );
  }
  return blocks;
}

/** The DER contents of every PEM block labelled `label` (`CERTIFICATE REQUEST`, …), in order. */
export function pemBlocks(pem: string, label: string): Buffer[] {
  const block = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*?)-----END ${label}-----`, 'g');
  return [...pem.matchAll(block)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

/** Joins PEM blocks into one text with exactly one newline after each block. */
export function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => `${b.trimEnd()}\n`).join('');
}

/**
 * Resolves a value that is either PEM text or the path of a PEM file: text containing
 * `-----BEGIN` is returned as is; anything else is read as a file path. Throws WEFT_E_PEM_FILE
 * naming the path when it cannot be read or holds no PEM data.
 */
export async function readPemInput(value: string): Promise<string> {
  if (value.includes('-----BEGIN')) return value;
  const path = value.trim();
  if (path === '') {
    throw new WeftError('WEFT_E_PEM_FILE', 'empty PEM input: give PEM text or the path of a PEM file');
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (err as Error).message;
    throw new WeftError(
      'WEFT_E_PEM_FILE',
      `cannot read PEM file "${path}": ${why}; check the path (or pass the PEM text itself)`,
      { cause: err },
    );
  }
  if (!text.includes('-----BEGIN')) {
    throw new WeftError('WEFT_E_PEM_FILE', `"${path}" contains no PEM data ("-----BEGIN …" block); is it the right file?`);
  }
  return text;
}
