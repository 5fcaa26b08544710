/**
 * uvicorn's TLS flags, shared by `wasmloop run` and `wasmloop serve`:
 * `--ssl-keyfile`, `--ssl-certfile` and `--ssl-ca-certs`, read into the
 * server's `tls` option (docs/tls.md). The files are read when the flags
 * are checked, so a missing or unreadable one is a usage error before
 * anything listens, and each worker of `--workers` reads them itself.
 */
import { readFileSync } from 'node:fs';
import { type Flag, type ParsedFlags, UsageError } from './args.js';

/** What the flags give: a server's `tls` option. */
export type TlsFiles = { key: string; cert: string; ca?: string };

export const TLS_FLAGS: readonly Flag[] = [
  {
    name: 'ssl-keyfile',
    placeholder: '<file>',
    parse: (value) => value,
    help: 'serve TLS with this PEM private key (with --ssl-certfile)',
  },
  {
    name: 'ssl-certfile',
    placeholder: '<file>',
    parse: (value) => value,
    help: 'the PEM certificate chain to serve TLS with',
  },
  {
    name: 'ssl-ca-certs',
    placeholder: '<file>',
    parse: (value) => value,
    help: 'PEM CAs that client certificates are checked against',
  },
];

/** The --ssl-* files, read: both of key and cert or neither; UsageError naming a file that cannot be read. */
export function tlsFiles(values: ParsedFlags['values']): TlsFiles | null {
  const file = (name: string) => (values.has(name) ? (values.get(name) as string) : null);
  const keyFile = file('ssl-keyfile');
  const certFile = file('ssl-certfile');
  const caFile = file('ssl-ca-certs');
  if (keyFile === null && certFile === null) {
    if (caFile !== null) throw new UsageError('--ssl-ca-certs needs --ssl-keyfile and --ssl-certfile');
    return null;
  }
  if (keyFile === null || certFile === null) throw new UsageError('TLS needs both --ssl-keyfile and --ssl-certfile');
  const read = (flag: string, path: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new UsageError(
        `${flag}: cannot read '${path}' (${(error as { code?: string }).code ?? (error as Error).message})`,
      );
    }
  };
  const tls: TlsFiles = { key: read('--ssl-keyfile', keyFile), cert: read('--ssl-certfile', certFile) };
  if (caFile !== null) tls.ca = read('--ssl-ca-certs', caFile);
  return tls;
}
