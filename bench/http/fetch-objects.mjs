// What the WHATWG fetch objects cost on this runtime, per operation: the
// price a server pays if it builds them for every request whether or not
// the application touches them.
//
//   node bench/http/fetch-objects.mjs
const N = 200_000;
const headerList = [
  ['host', 'example.test:8080'],
  [
    'user-agent',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  ],
  ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['accept-language', 'en-US,en;q=0.9'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['connection', 'keep-alive'],
  ['cookie', 'session=4f2a9c1e7b3d4e5f; theme=dark'],
  ['cache-control', 'max-age=0'],
];

async function time(name, fn) {
  for (let i = 0; i < N / 10; i++) await fn();
  const rounds = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await fn();
    rounds.push(((performance.now() - t0) * 1e6) / N);
  }
  rounds.sort((a, b) => a - b);
  console.log(`${rounds[1].toFixed(0).padStart(6)} ns  ${name}`);
}

const sync = (fn) => () => fn();
const baseline = () => undefined;
const response = new Response('hello');
await time('(loop overhead: an await of nothing)', baseline);
await time(
  'new Headers(8 pairs)',
  sync(() => new Headers(headerList)),
);
await time(
  "new Request(url, { method: 'GET', headers: 8 pairs })",
  sync(() => new Request('http://example.test:8080/a?b=c', { method: 'GET', headers: headerList })),
);
await time(
  'new Request(url) (no headers)',
  sync(() => new Request('http://example.test:8080/a?b=c')),
);
await time(
  'new URL(url)',
  sync(() => new URL('http://example.test:8080/a?b=c')),
);
await time(
  'new AbortController()',
  sync(() => new AbortController()),
);
await time(
  "new Response('hello')",
  sync(() => new Response('hello')),
);
await time(
  "new Response('hello'); iterate its headers",
  sync(() => {
    const r = new Response('hello');
    for (const [k, v] of r.headers) if (k.length + v.length < 0) throw new Error();
  }),
);
await time("new Response('hello'); await arrayBuffer()", async () => new Response('hello').arrayBuffer());
await time("new Response('hello'); read its body stream to the end", async () => {
  const reader = new Response('hello').body.getReader();
  while (!(await reader.read()).done) {}
});
await time(
  'response.status + response.headers.get(content-length)',
  sync(() => response.status + (response.headers.get('content-length') ?? '')),
);
await time(
  'new TextEncoder().encode of a 100-byte head (one encoder)',
  (() => {
    const e = new TextEncoder();
    const s =
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain;charset=UTF-8\r\ncontent-length: 5\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\n';
    return sync(() => e.encode(s));
  })(),
);
