// A local HTTP server in the Hugging Face Hub's layout, `/{repo}/resolve/{revision}/{file}`, for
// browser tests of Hub loading. It serves the files of local folders with Content-Length and
// single byte ranges, accepts CORS requests from the app's origin, and records every request.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface HubRequest {
  method: string;
  path: string;
  range: string | null;
}

export interface LocalHub {
  /** Base URL to enter as the Hub endpoint, such as `http://127.0.0.1:41234`. */
  endpoint: string;
  requests: HubRequest[];
  close(): Promise<void>;
}

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-headers': 'authorization, range',
  'access-control-expose-headers': 'content-length, content-range, accept-ranges',
};

/** Serves each `repos[repo/revision]` folder under `/{repo}/resolve/{revision}/`. */
export async function startLocalHub(repos: Record<string, string>): Promise<LocalHub> {
  const requests: HubRequest[] = [];

  const serve = (request: IncomingMessage, response: ServerResponse) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    requests.push({ method: request.method ?? '', path, range: request.headers.range ?? null });
    if (request.method === 'OPTIONS') {
      response.writeHead(204, CORS_HEADERS).end();
      return;
    }

    // Files may sit in subfolders (onnx/model.onnx), but a `..` segment could leave the repository's folder.
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const inside = match !== null && !match[3].split('/').includes('..');
    const folder = match && inside ? repos[`${match[1]}/${match[2]}`] : undefined;
    const file = folder && match ? join(folder, match[3]) : null;
    if (!file || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { ...CORS_HEADERS, 'content-type': 'text/plain' }).end('Entry not found');
      return;
    }

    const size = statSync(file).size;
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      response.writeHead(206, {
        ...CORS_HEADERS,
        'content-length': String(end - start + 1),
        'content-range': `bytes ${start}-${end}/${size}`,
        'accept-ranges': 'bytes',
      });
      createReadStream(file, { start, end }).pipe(response);
      return;
    }
    response.writeHead(200, { ...CORS_HEADERS, 'content-length': String(size), 'accept-ranges': 'bytes' });
    createReadStream(file).pipe(response);
  };

  const server: Server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
