// Shared by the HTTP suites: a raw client over the loop's own connections
// (so it reaches the virtual backend's in-memory network too) and a parser
// of the responses it reads, independent of the server's code.
import { serve } from '../ts-host/dist/index.js';

const decoder = new TextDecoder('latin1');

/**
 * Parses as many whole responses as `text` holds. `headRequests` lists, in
 * order, which requests were HEAD (their responses have no body).
 * Returns { responses, rest } with rest the unparsed tail.
 */
export function parseResponses(text, headRequests = []) {
  const responses = [];
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const lines = text.slice(at, headEnd).split('\r\n');
    const [version, code, ...reason] = lines[0].split(' ');
    const headers = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const status = Number(code);
    let bodyAt = headEnd + 4;
    let body = '';
    const noBody =
      status < 200 || status === 204 || status === 304 || headRequests[responses.filter((r) => r.status >= 200).length];
    if (noBody) {
      // no body
    } else if (headers['transfer-encoding'] === 'chunked') {
      let complete = false;
      for (;;) {
        const lineEnd = text.indexOf('\r\n', bodyAt);
        if (lineEnd === -1) break;
        const size = parseInt(text.slice(bodyAt, lineEnd), 16);
        if (size === 0) {
          if (text.length < lineEnd + 4) break;
          bodyAt = lineEnd + 4;
          complete = true;
          break;
        }
        if (text.length < lineEnd + 2 + size + 2) break;
        body += text.slice(lineEnd + 2, lineEnd + 2 + size);
        bodyAt = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
    } else if ('content-length' in headers) {
      const length = Number(headers['content-length']);
      if (text.length < bodyAt + length) break;
      body = text.slice(bodyAt, bodyAt + length);
      bodyAt += length;
    } else if (status >= 200) {
      // Delimited by the end of the connection: all that is left.
      body = text.slice(bodyAt);
      bodyAt = text.length;
    }
    responses.push({ version, status, reason: reason.join(' '), headers, body });
    at = bodyAt;
  }
  return { responses, rest: text.slice(at) };
}

/**
 * Connects to `port`, writes each of `parts` (strings or bytes) in turn,
 * and reads until the server closes or `count` responses (final ones,
 * status >= 200) arrived. Returns { responses, closed, text }.
 */
export async function exchange(loop, address, parts, { count = Infinity, headRequests = [], end = false } = {}) {
  const conn = await loop.createConnection(address.path ? { path: address.path } : { port: address.port });
  let text = '';
  let closed = false;
  try {
    for (const part of [].concat(parts)) await conn.write(part);
    if (end) await conn.end();
    for (;;) {
      if (parseResponses(text, headRequests).responses.filter((r) => r.status >= 200).length >= count) break;
      const chunk = await conn.read().catch(() => null);
      if (chunk === null) {
        closed = true;
        break;
      }
      text += decoder.decode(chunk);
    }
  } finally {
    conn.close();
  }
  return { ...parseResponses(text, headRequests), closed, text };
}

/** Runs `fn(server, loop)` with a server of `options` on `loop`, closing it after. */
export async function withServer(loop, options, fn) {
  const server = await serve(loop, { port: 0, ...options });
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

/** A handler that echoes what it saw as JSON. */
export async function echoHandler(request) {
  const body = request.body === null ? null : await request.text();
  return Response.json({
    method: request.method,
    url: request.url,
    headers: Object.fromEntries(request.headers),
    body,
  });
}
