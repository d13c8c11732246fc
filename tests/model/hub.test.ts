// Hub downloads against a local HTTP server on 127.0.0.1 that serves checkpoint directories in
// the Hub's /{repo}/resolve/{revision}/{file} layout, with Range support that a test can turn off.
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openCheckpoint } from '../../src/model/checkpoint.ts';
import { UserError } from '../../src/model/errors.ts';
import { exportCheckpoint, memoryDirectorySink } from '../../src/model/export.ts';
import { hubDirectory, type HubOptions } from '../../src/model/hub.ts';
import { writeTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

let root: string;
let server: Server;
let endpoint: string;
const repos = new Map<string, string>();
const requests: { path: string; range?: string }[] = [];
let honourRange = true;

let gpt2: TinyCheckpoint;
let sharded: TinyCheckpoint;
let legacy: TinyCheckpoint;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hub-test-'));
  gpt2 = await writeTinyCheckpoint(join(root, 'gpt2'), {
    dtype: 'F16',
    includeBuffers: true,
    writeTokenizer: async (dir) => {
      await writeFile(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE"}}');
      await writeFile(join(dir, 'tokenizer_config.json'), '{}');
    },
  });
  sharded = await writeTinyCheckpoint(join(root, 'neo'), { family: 'gpt_neo', shards: 2, seed: 'neo' });
  legacy = await writeTinyCheckpoint(join(root, 'legacy'), {
    writeTokenizer: async (dir) => {
      await writeFile(join(dir, 'vocab.json'), '{"a": 0}');
      await writeFile(join(dir, 'merges.txt'), '#version: 0.2\n');
    },
  });
  repos.set('tiny/gpt2', gpt2.dir);
  repos.set('tiny/neo-sharded', sharded.dir);
  repos.set('legacy', legacy.dir);

  server = createServer(async (request, response) => {
    const url = new URL(request.url!, 'http://127.0.0.1');
    requests.push({ path: url.pathname, range: request.headers.range });
    const match = /^\/(.+)\/resolve\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (match?.[1].startsWith('private/')) {
      response.writeHead(401).end('{"error": "Invalid credentials"}');
      return;
    }
    const dir = match && match[2] === 'main' ? repos.get(match[1]) : undefined;
    const info = dir ? await stat(join(dir, match![3])).catch(() => null) : null;
    if (!dir || !info) {
      response.writeHead(404).end('Entry not found');
      return;
    }
    const path = join(dir, match![3]);
    const range = /^bytes=(\d+)-$/.exec(request.headers.range ?? '');
    if (range && honourRange) {
      const start = Number(range[1]);
      response.writeHead(206, {
        'Content-Length': info.size - start,
        'Content-Range': `bytes ${start}-${info.size - 1}/${info.size}`,
      });
      createReadStream(path, { start, highWaterMark: 256 }).pipe(response);
    } else {
      response.writeHead(200, { 'Content-Length': info.size });
      createReadStream(path, { highWaterMark: 256 }).pipe(response);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

async function hubFailure(options: Partial<HubOptions>): Promise<UserError> {
  const error = await hubDirectory({ repo: 'tiny/gpt2', endpoint, ...options }).catch((caught: unknown) => caught);
  expect(error).toBeInstanceOf(UserError);
  return error as UserError;
}

describe('hubDirectory', () => {
  it('downloads a checkpoint and its tokenizer', async () => {
    const progress = new Map<string, [number, number]>();
    const files = await hubDirectory({ repo: 'tiny/gpt2', endpoint, onProgress: (file, loaded, total) => progress.set(file, [loaded, total]) });
    expect(files.names()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(await files.readText('tokenizer.json')).toBe('{"model": {"type": "BPE"}}');

    const checkpoint = await openCheckpoint(files);
    for await (const { entry, data } of checkpoint.readTensors()) {
      expect([...data], entry.name).toEqual([...gpt2.weights.get(entry.name)!]);
    }
    expect(checkpoint.ignoredKeys).toHaveLength(4);

    const size = (await stat(join(gpt2.dir, 'model.safetensors'))).size;
    const [loaded, total] = progress.get('model.safetensors')!;
    expect(total).toBe(size);
    expect(loaded).toBeGreaterThan(size - 512);
    expect(progress.get('config.json')).toBeDefined();
  });

  it('downloads a sharded checkpoint', async () => {
    const files = await hubDirectory({ repo: 'tiny/neo-sharded', endpoint });
    expect(files.names()).toEqual(['config.json', 'model.safetensors.index.json', ...sharded.weightFiles].sort());
    const checkpoint = await openCheckpoint(files);
    expect(checkpoint.config.family).toBe('gpt_neo');
    for await (const { entry, data } of checkpoint.readTensors()) {
      expect([...data], entry.name).toEqual([...sharded.weights.get(entry.name)!]);
    }
  });

  it('falls back to vocab.json and merges.txt', async () => {
    const files = await hubDirectory({ repo: 'legacy', endpoint });
    expect(files.names()).toEqual(['config.json', 'merges.txt', 'model.safetensors', 'vocab.json']);
    expect(await files.readText('merges.txt')).toBe('#version: 0.2\n');
  });

  it('streams each weight file once per pass', async () => {
    const files = await hubDirectory({ repo: 'tiny/gpt2', endpoint });
    const checkpoint = await openCheckpoint(files);
    requests.length = 0;
    for await (const item of checkpoint.readTensors()) void item;
    expect(requests.filter((request) => request.path.endsWith('/model.safetensors'))).toHaveLength(1);
  });

  it('exports from one pass over the download', async () => {
    const checkpoint = await openCheckpoint(await hubDirectory({ repo: 'tiny/gpt2', endpoint }));
    const sink = memoryDirectorySink();
    requests.length = 0;
    await exportCheckpoint(checkpoint, new Map(), sink);

    expect(requests.filter((request) => request.path.endsWith('/model.safetensors'))).toHaveLength(1);
    expect([...sink.files.keys()].sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const original = await readFile(join(gpt2.dir, 'model.safetensors'));
    const exported = new Uint8Array(await sink.files.get('model.safetensors')!.arrayBuffer());
    const dataBytes = checkpoint.storedTensors.at(-1)!.end - checkpoint.storedTensors[0].begin;
    expect(exported.subarray(exported.byteLength - dataBytes)).toEqual(new Uint8Array(original.subarray(original.byteLength - dataBytes)));
    expect(await sink.files.get('tokenizer.json')!.text()).toBe('{"model": {"type": "BPE"}}');
  });

  for (const ranges of [true, false]) {
    it(`reads backwards ${ranges ? 'with' : 'without'} Range support`, async () => {
      honourRange = ranges;
      try {
        const checkpoint = await openCheckpoint(await hubDirectory({ repo: 'tiny/gpt2', endpoint }));
        const source = await checkpoint.files.open('model.safetensors');
        const [first, last] = [checkpoint.storedTensors[0], checkpoint.storedTensors.at(-1)!];
        const late = await source.read(last.begin, last.end - last.begin);
        requests.length = 0;
        const early = await source.read(first.begin, first.end - first.begin);
        await source.close();

        expect(early).toEqual(await checkpoint.readRaw(first));
        expect(late).toEqual(await checkpoint.readRaw(last));
        expect(requests[0].range).toBe(first.begin > 0 ? `bytes=${first.begin}-` : undefined);
      } finally {
        honourRange = true;
      }
    });
  }

  it('reports a missing repository', async () => {
    const error = await hubFailure({ repo: 'tiny/absent' });
    expect(error.message).toBe(
      `${endpoint}/tiny/absent/resolve/main/config.json not found (HTTP 404). ` +
        'Check the model id "tiny/absent", the revision "main" and the endpoint.',
    );
  });

  it('reports a missing revision', async () => {
    const error = await hubFailure({ revision: 'v2' });
    expect(error.message).toContain('/tiny/gpt2/resolve/v2/config.json not found (HTTP 404)');
    expect(error.message).toContain('the revision "v2"');
  });

  it('reports denied access', async () => {
    const error = await hubFailure({ repo: 'private/model' });
    expect(error.message).toMatch(/^access to .*private\/model\/resolve\/main\/config\.json was denied \(HTTP 401\)/);
    expect(error.message).toContain('provide an access token');
  });

  it('reports an unreachable endpoint', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await hubFailure({ endpoint: `http://127.0.0.1:${port}` });
    expect(error.message).toMatch(new RegExp(`^cannot reach http://127\\.0\\.0\\.1:${port}/tiny/gpt2/resolve/main/config\\.json`));
    expect(error.message).toContain('Check the network connection');
  });

  it('reports a repository without safetensors weights', async () => {
    repos.set('tiny/config-only', join(root, 'config-only'));
    await writeTinyCheckpoint(join(root, 'config-only'));
    await rm(join(root, 'config-only', 'model.safetensors'));
    const error = await hubFailure({ repo: 'tiny/config-only' });
    expect(error.message).toMatch(/^neither model\.safetensors nor model\.safetensors\.index\.json found in tiny\/config-only at revision main/);
  });

  it('rejects an invalid model id', async () => {
    const error = await hubFailure({ repo: '../etc/passwd' });
    expect(error.message).toBe('invalid model id "../etc/passwd". Use the Hub\'s owner/name form, such as openai-community/gpt2.');
  });
});
