// `wasmloop run|serve --ssl-keyfile K --ssl-certfile C [--ssl-ca-certs F]`
// (uvicorn's flags): run's options.listen carries tls, so the example echo
// server serves TLS unchanged; serve serves HTTPS (both interfaces); bad
// flags are usage errors naming them.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import https from 'node:https';
import tls from 'node:tls';
import { run, withCommand } from './fixtures/command.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
// Each case spawns the command: a generous limit against hangs, not a speed figure.
const cli = suite('wasmloop run and serve with TLS', {}, { timeLimitMs: 120_000 });

/** GET `path` over HTTPS, trusting the test CA; resolves with the body. */
function httpsGet(port, path) {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, ca: certs.ca.cert, ALPNProtocols: ['h2', 'http/1.1'], agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      },
    );
    req.on('error', reject);
  });
}

cli('--help lists the --ssl-* flags', () => {
  const r = run(['run', '--help']);
  for (const flag of ['--ssl-keyfile', '--ssl-certfile', '--ssl-ca-certs']) assert.ok(r.stdout.includes(flag), flag);
});

cli('the example echo server serves TLS with --ssl-keyfile and --ssl-certfile', () =>
  withCommand(
    [
      'run',
      './examples/echo-server.mjs:main',
      '--port',
      '0',
      '--ssl-keyfile',
      certs.server.keyFile,
      '--ssl-certfile',
      certs.server.certFile,
    ],
    async (server) => {
      const port = Number((await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1]);
      const socket = tls.connect({ host: '127.0.0.1', port, ca: certs.ca.cert });
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      assert.ok(socket.authorized);
      socket.write('over tls\n');
      const reply = await new Promise((resolve) => socket.once('data', (data) => resolve(String(data))));
      assert.is(reply, 'over tls\n');
      socket.end();
      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      assert.is(code, 0, server.output().err);
    },
  ),
);

cli('wasmloop serve serves HTTPS with --ssl-keyfile and --ssl-certfile, both interfaces', async () => {
  const tlsFlags = ['--ssl-keyfile', certs.server.keyFile, '--ssl-certfile', certs.server.certFile];
  const cases = [
    [['./test/fixtures/https-app.mjs'], (port) => `https://127.0.0.1:${port}/x?y=1 secure=true alpn=http/1.1`],
    [['./test/fixtures/https-app.mjs:listener', '--interface', 'node'], () => 'node /x?y=1 encrypted=true'],
  ];
  for (const [args, expected] of cases) {
    await withCommand(['serve', ...args, '--port', '0', '--no-access-log', ...tlsFlags], async (server) => {
      const port = Number((await server.waitFor(/serving on https:\/\/127\.0\.0\.1:(\d+) /, 'err'))[1]);
      assert.is(await httpsGet(port, '/x?y=1'), expected(port));
      server.child.kill('SIGTERM');
      const { code } = await server.exited;
      assert.is(code, 0, server.output().err);
    });
  }
  const r = run(['serve', './test/fixtures/https-app.mjs', '--port', '0', '--ssl-certfile', certs.server.certFile]);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /TLS needs both --ssl-keyfile and --ssl-certfile/);
});

cli('half the pair, or a file that cannot be read, is a usage error naming it', () => {
  const cases = [
    [['--ssl-keyfile', certs.server.keyFile], /TLS needs both --ssl-keyfile and --ssl-certfile/],
    [['--ssl-ca-certs', certs.ca.certFile], /--ssl-ca-certs needs --ssl-keyfile and --ssl-certfile/],
    [
      ['--ssl-keyfile', '/nonexistent.key', '--ssl-certfile', certs.server.certFile],
      /--ssl-keyfile: cannot read '\/nonexistent.key' \(ENOENT\)/,
    ],
  ];
  for (const [flags, pattern] of cases) {
    const r = run(['run', './examples/echo-server.mjs:main', '--port', '0', ...flags]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, pattern);
  }
});

cli.run();
