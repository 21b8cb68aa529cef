import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { WeftError } from '../errors.js';

/** File mode of private key files. */
export const KEY_FILE_MODE = 0o600;
/** File mode of certificate and bundle files. */
export const CERT_FILE_MODE = 0o644;

/**
 * Writes `content` to `path` atomically (temporary file in the same directory, then rename),
 * so a reader never sees a half-written file, and sets the file mode exactly (regardless of
 * umask). Creates the parent directory (mode 0700) when missing.
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { mode, flag: 'wx' });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new WeftError('WEFT_E_WRITE', `cannot write "${path}": ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Throws WEFT_E_EXISTS when any of `paths` exists; `hint` says what to do instead
 * (typically: pass --force).
 */
export async function refuseToOverwrite(paths: readonly string[], hint: string): Promise<void> {
  for (const path of paths) {
    const exists = await access(path).then(
      () => true,
      () => false,
    );
    if (exists) throw new WeftError('WEFT_E_EXISTS', `"${path}" already exists; ${hint}`);
  }
}

/** Whether `path` exists (and can be reached). */
export function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
