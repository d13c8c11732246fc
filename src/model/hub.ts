// A checkpoint directory on the Hugging Face Hub, read over HTTP from
// `${endpoint}/${repo}/resolve/${revision}/${file}`. Small text files (config, index, tokenizer)
// are downloaded whole when the directory is opened. Weight files stream on each open, tensor by
// tensor. A read behind the stream's position starts a new request with a Range header.
import { UserError } from './errors.ts';
import { WEIGHTS_FILE, WEIGHTS_INDEX_FILE, CONFIG_FILE } from './checkpoint.ts';
import { memorySource, StreamReader, type ByteSource, type CheckpointFiles } from './sources.ts';

export interface HubOptions {
  /** Model id, `owner/name` or a legacy single name such as `gpt2`. */
  repo: string;
  /** Branch, tag or commit; defaults to `main`. */
  revision?: string;
  /** Defaults to https://huggingface.co; a mirror or a local test server also works. */
  endpoint?: string;
  /** Sent as a bearer token, for private or gated repositories. */
  accessToken?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Called as bytes of a file arrive; `loadedBytes` counts from the start of the file. */
  onProgress?: (file: string, loadedBytes: number, totalBytes: number) => void;
}

/** Optional files downloaded with the weights when the repository has them. */
const OPTIONAL_TEXT_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
/** The tokenizer files of repositories that ship no tokenizer.json. */
const LEGACY_TOKENIZER_FILES = ['vocab.json', 'merges.txt'];

const REPO_PATTERN = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

export function hubFileUrl(endpoint: string, repo: string, revision: string, file: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** Opens a Hub repository as a checkpoint directory; its text files are downloaded now. */
export async function hubDirectory(options: HubOptions): Promise<CheckpointFiles> {
  const { repo, revision = 'main', endpoint = 'https://huggingface.co' } = options;
  if (!REPO_PATTERN.test(repo) || repo.includes('..')) {
    throw new UserError(`invalid model id "${repo}". Use the Hub's owner/name form, such as openai-community/gpt2.`);
  }
  if (!/^https?:\/\/[^\s]+$/.test(endpoint)) {
    throw new UserError(`invalid Hub endpoint "${endpoint}". Use an http or https URL, such as https://huggingface.co.`);
  }
  const client = new HubClient(options, repo, revision, endpoint);
  const location = `${repo} at revision ${revision} (${endpoint})`;

  // config.json alone first, so that a wrong id or revision reports on the file everyone has.
  const texts = new Map<string, Uint8Array>();
  texts.set(CONFIG_FILE, (await client.download(CONFIG_FILE, false))!);

  const optional = await Promise.all(OPTIONAL_TEXT_FILES.map((file) => client.download(file, true)));
  OPTIONAL_TEXT_FILES.forEach((file, i) => optional[i] && texts.set(file, optional[i]));
  if (!texts.has('tokenizer.json')) {
    const legacy = await Promise.all(LEGACY_TOKENIZER_FILES.map((file) => client.download(file, true)));
    LEGACY_TOKENIZER_FILES.forEach((file, i) => legacy[i] && texts.set(file, legacy[i]));
  }

  const weightFiles: string[] = [];
  if (await client.exists(WEIGHTS_FILE)) {
    weightFiles.push(WEIGHTS_FILE);
  } else {
    const index = await client.download(WEIGHTS_INDEX_FILE, true);
    if (!index) {
      throw new UserError(
        `neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE} found in ${location}. ` +
          'Choose a repository or revision that has safetensors weights.',
      );
    }
    texts.set(WEIGHTS_INDEX_FILE, index);
    weightFiles.push(...shardNames(index));
  }

  const names = [...new Set([...texts.keys(), ...weightFiles])].sort();
  const requireName = (name: string) => {
    if (!names.includes(name)) throw new UserError(`${name} not found in ${location}.`);
  };
  return {
    location,
    names: () => [...names],
    async open(name) {
      requireName(name);
      const text = texts.get(name);
      return text ? memorySource(text, client.url(name)) : client.openStream(name);
    },
    async readText(name) {
      requireName(name);
      const text = texts.get(name);
      if (!text) throw new Error(`${name} is a weight file, not a text file`);
      return new TextDecoder().decode(text);
    },
  };
}

/** Shard names of an index, so that they can be listed; openCheckpoint validates the index itself. */
function shardNames(index: Uint8Array): string[] {
  try {
    const weightMap = JSON.parse(new TextDecoder().decode(index))?.weight_map;
    const values: unknown[] = weightMap && typeof weightMap === 'object' ? Object.values(weightMap) : [];
    return [...new Set(values.filter((value): value is string => typeof value === 'string' && /^[^/\\]+$/.test(value)))];
  } catch {
    return [];
  }
}

class HubClient {
  private readonly fetchFunction: typeof fetch;

  constructor(
    private readonly options: HubOptions,
    private readonly repo: string,
    private readonly revision: string,
    private readonly endpoint: string,
  ) {
    this.fetchFunction = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  url(file: string): string {
    return hubFileUrl(this.endpoint, this.repo, this.revision, file);
  }

  /** Sends a GET; a 404 returns null when `optional`, and every other failure raises a UserError. */
  async request(file: string, optional: boolean, rangeStart = 0): Promise<Response | null> {
    const url = this.url(file);
    const headers: Record<string, string> = {};
    if (this.options.accessToken) headers.Authorization = `Bearer ${this.options.accessToken}`;
    if (rangeStart > 0) headers.Range = `bytes=${rangeStart}-`;

    let response: Response;
    try {
      response = await this.fetchFunction(url, { headers, signal: this.options.signal });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      const cause = (error as { cause?: Error }).cause?.message ?? (error as Error).message;
      throw new UserError(`cannot reach ${url} (${cause}). Check the network connection and the Hub endpoint ${this.endpoint}.`);
    }
    if (response.ok) return response;

    await response.body?.cancel().catch(() => {});
    if (response.status === 404 && optional) return null;
    throw this.statusError(url, response);
  }

  private statusError(url: string, response: Response): UserError {
    const status = `HTTP ${response.status}`;
    if (response.status === 404) {
      return new UserError(`${url} not found (${status}). Check the model id "${this.repo}", the revision "${this.revision}" and the endpoint.`);
    }
    if (response.status === 401 || response.status === 403) {
      return new UserError(
        `access to ${url} was denied (${status}). The model id "${this.repo}" may be wrong, ` +
          'or the repository is private or gated: check the id, or provide an access token that can read it.',
      );
    }
    return new UserError(`download of ${url} failed (${status} ${response.statusText}). Try again later, or check the endpoint.`);
  }

  /** Downloads a whole file, or returns null for a missing optional one. */
  async download(file: string, optional: boolean): Promise<Uint8Array | null> {
    const response = await this.request(file, optional);
    if (!response) return null;
    const bytes = new Uint8Array(await response.arrayBuffer());
    this.options.onProgress?.(file, bytes.byteLength, bytes.byteLength);
    return bytes;
  }

  async exists(file: string): Promise<boolean> {
    const response = await this.request(file, true);
    await response?.body?.cancel().catch(() => {});
    return response !== null;
  }

  /** Opens a file for streaming; its size comes from the response headers. */
  async openStream(file: string): Promise<ByteSource> {
    const url = this.url(file);
    const first = await this.request(file, false);
    const size = responseSize(first!, url);
    const progress = (position: number) => this.options.onProgress?.(file, position, size);
    const streamOf = (response: Response) => {
      if (!response.body) throw new UserError(`${url} returned no data. Try again later.`);
      return response.body;
    };
    let reader = new StreamReader(streamOf(first!), url, size, 0, progress);

    const restartAt = async (offset: number) => {
      await reader.cancel();
      const response = (await this.request(file, false, offset))!;
      // A server that ignores Range sends the whole file with 200, which the reader skips through.
      const start = response.status === 206 ? rangeStart(response, url) : 0;
      if (start > offset) throw new UserError(`${url}: a request for bytes from ${offset} returned bytes from ${start}. Try again later.`);
      reader = new StreamReader(streamOf(response), url, size, start, progress);
    };

    let queue: Promise<unknown> = Promise.resolve();
    return {
      name: url,
      size,
      read(offset, length) {
        if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
          return Promise.reject(new RangeError(`read of ${length} bytes at offset ${offset} is outside ${url} (${size} bytes)`));
        }
        const result = queue.then(async () => {
          if (offset < reader.position) await restartAt(offset);
          return reader.read(offset, length);
        });
        queue = result.catch(() => {});
        return result;
      },
      close: () => reader.cancel(),
    };
  }
}

function responseSize(response: Response, url: string): number {
  const encoding = response.headers.get('content-encoding');
  const length = Number(response.headers.get('content-length') ?? NaN);
  if ((encoding && encoding !== 'identity') || !Number.isSafeInteger(length) || length < 0) {
    throw new UserError(`${url} was sent without a usable Content-Length, so its size is unknown. Download the files and open the local directory instead.`);
  }
  return length;
}

function rangeStart(response: Response, url: string): number {
  const match = /^bytes (\d+)-\d+\/\d+$/.exec(response.headers.get('content-range') ?? '');
  if (!match) throw new UserError(`${url} responded to a range request without a valid Content-Range header. Try again later.`);
  return Number(match[1]);
}
