// HTTPS on every backend with a network: serve({ tls }) answering
// loop.fetch('https://...') (request URLs https:, info.secure and info.tls
// on the handler's side), the certificate verified by default (a private
// CA trusted through the client's tls option), and a certificate the
// client refuses failing fetch with the TlsError as its cause.
import { suite } from './harness.mjs';
import * as assert from 'uvu/assert';
import { TlsError, createHttpClient } from '../ts-host/dist/index.js';
import { IO_BACKENDS, backendLabel, onLoop, unlessHostBug } from './helpers.mjs';
import { outcome, within } from './io-helpers.mjs';
import { certificates } from './tls-certs.mjs';

const certs = certificates();
const SERVER_TLS = { key: certs.server.key, cert: certs.server.cert };

/** A handler that says what it saw. */
async function describeRequest(request, info) {
  const body = request.method === 'POST' ? await request.text() : '';
  return Response.json({
    url: request.url,
    secure: info.secure,
    version: info.tls?.version ?? null,
    alpn: info.tls?.alpnProtocol ?? null,
    body,
  });
}

for (const backend of process.env.TLS_BACKEND ? [process.env.TLS_BACKEND] : IO_BACKENDS) {
  const test = suite(`https: ${backendLabel(backend)}`);

  test('serve({ tls }) answers fetch over TLS: https: URLs, info.secure, one kept-alive connection', () =>
    onLoop(backend, async (loop) => {
      const server = await loop.serve({ fetch: describeRequest, port: 0, tls: SERVER_TLS });
      const { port } = server.address();
      const client = createHttpClient(loop, { tls: { ca: certs.ca.cert } });
      const first = await within(client.fetch(`https://localhost:${port}/a/b?c=1`), 'the first fetch');
      assert.is(first.status, 200);
      assert.equal(await first.json(), {
        url: `https://localhost:${port}/a/b?c=1`,
        secure: true,
        version: 'TLSv1.3',
        alpn: 'http/1.1',
        body: '',
      });
      const body = 'x'.repeat(100_000);
      const second = await within(client.fetch(`https://localhost:${port}/post`, { method: 'POST', body }), 'the POST');
      const seen = await second.json();
      assert.is(seen.body.length, body.length);
      assert.is(seen.body, body);
      assert.is(client.connections, 1, 'one TLS connection, kept alive');
      await client.close();
      // Plaintext servers still say http: and not secure.
      const plain = await loop.serve({ fetch: describeRequest, port: 0 });
      const reply = await (
        await within(loop.fetch(`http://127.0.0.1:${plain.address().port}/`), 'the plain fetch')
      ).json();
      assert.equal(
        [reply.url, reply.secure, reply.version],
        [`http://127.0.0.1:${plain.address().port}/`, false, null],
      );
      await within(Promise.all([server.close(), plain.close()]), 'the servers closed');
    }));

  /** Each `[server tls, host, the client's ca, the code fetch's TlsError has]` fails, and no request reaches a handler. */
  const refused = (cases) =>
    onLoop(backend, async (loop) => {
      let handled = 0;
      for (const [tls, host, ca, code] of cases) {
        const server = await loop.serve({ fetch: () => new Response(String(++handled)), port: 0, tls });
        const client = createHttpClient(loop, ca === null ? {} : { tls: { ca } });
        const { error } = await within(
          outcome(client.fetch(`https://${host}:${server.address().port}/`)),
          `the fetch (${code})`,
        );
        assert.instance(error, TypeError, code);
        assert.instance(error.cause, TlsError, code);
        assert.is(error.cause.code, code);
        await client.close();
        await within(server.close(), 'server.close()');
      }
      assert.is(handled, 0, 'no request reached a handler');
    });

  test('a certificate fetch cannot verify fails it with the TlsError as its cause', () =>
    refused([
      // A private CA the host's roots do not hold.
      [SERVER_TLS, 'localhost', null, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      [
        { key: certs.selfSigned.key, cert: certs.selfSigned.cert },
        'localhost',
        certs.ca.cert,
        'DEPTH_ZERO_SELF_SIGNED_CERT',
      ],
      [
        { key: certs.otherName.key, cert: certs.otherName.cert },
        'localhost',
        certs.ca.cert,
        'ERR_TLS_CERT_ALTNAME_INVALID',
      ],
    ]));

  unlessHostBug(test, 'tls expired code', 'an expired certificate fails fetch with CERT_HAS_EXPIRED', () =>
    refused([[{ key: certs.expired.key, cert: certs.expired.cert }, 'localhost', certs.ca.cert, 'CERT_HAS_EXPIRED']]),
  );

  test.run();
}
