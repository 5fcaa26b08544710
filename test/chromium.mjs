// Headless Chromium for the host tests (the conformance run, the tarball's
// user path, the HTTP server in a page): a static file server over a
// directory, and pages whose module sets `window.report` when it is done.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, relative } from 'node:path';

/** Debian's Chromium, which `make deps` installs. */
export const CHROMIUM = '/usr/bin/chromium';

const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.html': 'text/html',
  '.wasm': 'application/wasm',
};

/**
 * Serves the files under `root` on 127.0.0.1 (nothing outside it), and
 * `extra`'s paths (`{ '/vectors.json': ['application/json', text] }`)
 * before them; resolves to the server.
 */
export async function serveFiles(root, extra = {}) {
  const server = createServer((request, response) => {
    const path = new URL(request.url, 'http://localhost').pathname;
    if (Object.hasOwn(extra, path)) {
      const [type, body] = extra[path];
      response.writeHead(200, { 'content-type': type });
      response.end(body);
      return;
    }
    const file = join(root, normalize(path));
    if (relative(root, file).startsWith('..') || !existsSync(file)) {
      response.writeHead(404);
      response.end();
      return;
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(readFileSync(file));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/**
 * Opens each of `paths` (served from `root`, with `extra` as serveFiles
 * takes it) in one headless Chromium, one page after the other, and waits
 * up to 60 s for each page's `window.report`. Resolves to the browser's
 * version and, per path, the report and the errors the page threw.
 */
export async function inChromium(root, paths, extra = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`chromium: ${CHROMIUM} is missing (make deps installs Debian's chromium)`);
  const { chromium } = await import('playwright-core');
  const server = await serveFiles(root, extra);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
  try {
    const pages = [];
    for (const path of paths) {
      const page = await browser.newPage();
      const errors = [];
      page.on('pageerror', (error) => errors.push(String(error)));
      await page.goto(`http://127.0.0.1:${server.address().port}/${path}`);
      await page.waitForFunction(() => window.report !== undefined, null, { timeout: 60_000 });
      pages.push({ report: await page.evaluate(() => window.report), errors });
      await page.close();
    }
    return { version: `Chromium ${browser.version()}`, pages };
  } finally {
    await browser.close();
    server.close();
  }
}
