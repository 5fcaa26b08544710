// Certificates for the TLS suites, made with the machine's `openssl` into a
// temporary directory when a suite first asks, removed when the process
// exits: no private key is ever committed. EC P-256 keys (fast to make).
//
//   ca               a root CA; `server` and `expired` chain to it
//   server           CN=localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
//   expired          the same names, valid in 2020 only
//   otherName        chains to ca, SAN DNS:example.com only (a wrong host)
//   selfSigned       CN=localhost, signed by itself (no CA vouches for it)
//   clientCa, client a CA for client certificates, and CN=client under it
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let made = null;

function openssl(cwd, ...args) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(cwd, name) {
  openssl(cwd, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

function selfSignedCa(cwd, name, cn) {
  key(cwd, name);
  openssl(
    cwd,
    'req',
    '-x509',
    '-new',
    '-key',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '3',
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

/** A leaf signed by `ca` with `san`, valid from `start` to `end` (openssl ca's dates) or for 3 days. */
function leaf(cwd, name, ca, cn, san, dates) {
  key(cwd, name);
  openssl(cwd, 'req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const db = join(cwd, `${name}-db`);
  mkdirSync(db);
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), `${(1000 + made.serial++).toString(16).padStart(4, '0')}\n`);
  const ext = san === null ? '' : `subjectAltName=${san}\n`;
  writeFileSync(
    join(cwd, `${name}.cnf`),
    [
      '[ca]',
      'default_ca=own',
      '[own]',
      `dir=${db}`,
      'database=$dir/index.txt',
      'serial=$dir/serial',
      'new_certs_dir=$dir',
      'default_md=sha256',
      'policy=any',
      'copy_extensions=none',
      'x509_extensions=ext',
      'unique_subject=no',
      '[any]',
      'commonName=supplied',
      '[ext]',
      'basicConstraints=CA:FALSE',
      ext,
    ].join('\n'),
  );
  const when = dates === undefined ? ['-days', '3'] : ['-startdate', dates[0], '-enddate', dates[1]];
  openssl(
    cwd,
    'ca',
    '-batch',
    '-config',
    `${name}.cnf`,
    '-cert',
    `${ca}.pem`,
    '-keyfile',
    `${ca}.key`,
    '-in',
    `${name}.csr`,
    '-out',
    `${name}.pem`,
    '-notext',
    ...when,
  );
}

/** `{ dir, ca, server: { key, cert, keyFile, certFile }, ... }`, made once per process. */
export function certificates() {
  if (made !== null) return made.certs;
  const dir = mkdtempSync(join(tmpdir(), 'wasmloop-tls-'));
  made = { serial: 1, certs: null };
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  selfSignedCa(dir, 'ca', 'wasmloop test CA');
  leaf(dir, 'server', 'ca', 'localhost', 'DNS:localhost,IP:127.0.0.1,IP:::1');
  leaf(dir, 'expired', 'ca', 'localhost', 'DNS:localhost,IP:127.0.0.1', ['20200101000000Z', '20200102000000Z']);
  leaf(dir, 'otherName', 'ca', 'example.com', 'DNS:example.com');
  key(dir, 'selfSigned');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    'selfSigned.key',
    '-out',
    'selfSigned.pem',
    '-days',
    '3',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
  );
  selfSignedCa(dir, 'clientCa', 'wasmloop client CA');
  leaf(dir, 'client', 'clientCa', 'client', null);
  const pair = (name) => ({
    key: readFileSync(join(dir, `${name}.key`), 'utf8'),
    cert: readFileSync(join(dir, `${name}.pem`), 'utf8'),
    keyFile: join(dir, `${name}.key`),
    certFile: join(dir, `${name}.pem`),
  });
  made.certs = {
    dir,
    ca: pair('ca'),
    server: pair('server'),
    expired: pair('expired'),
    otherName: pair('otherName'),
    selfSigned: pair('selfSigned'),
    clientCa: pair('clientCa'),
    client: pair('client'),
  };
  return made.certs;
}
