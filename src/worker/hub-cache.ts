// A fetch for Hub downloads that keeps every completely read file in the browser's Cache
// Storage, keyed by its URL `{endpoint}/{repo}/resolve/{revision}/{file}`, so that a second load
// of the same repository and revision needs no download. The export also reopens the weight
// files, and reads them from this cache instead of downloading them again.
//
// A response body is copied into the cache while the loader reads it, so a weight file never
// sits in memory as a whole. A body that is cancelled before its last byte (the loader reads
// only the safetensors header first) is not stored. Range requests on a cached file are served
// from the cached body.

const CACHE_NAME = 'irepair-hub-files-v1';

export interface HubCache {
  /** A drop-in replacement for fetch, for the GET requests the Hub loader sends. */
  fetch: typeof fetch;
  /** Whether the latest response for `url` came from the cache. */
  servedFromCache(url: string): boolean;
}

/**
 * Opens the cache, or returns a HubCache that passes every request to `base` where Cache
 * Storage is unavailable (outside secure contexts, or when the browser refuses storage).
 */
export async function openHubCache(base: typeof fetch = globalThis.fetch.bind(globalThis)): Promise<HubCache> {
  let cache: Cache | null = null;
  try {
    cache = typeof caches === 'undefined' ? null : await caches.open(CACHE_NAME);
  } catch {
    // Private windows with storage disabled reject caches.open; downloads still work uncached.
    cache = null;
  }
  const fromCache = new Set<string>();
  if (!cache) {
    return { fetch: base, servedFromCache: () => false };
  }
  const open = cache;

  const cachedFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (method !== 'GET') return base(input, init);
    const rangeStart = parseRangeStart(new Headers(init?.headers).get('range'));

    const hit = await open.match(url);
    if (hit) {
      fromCache.add(url);
      if (hit.status === 404) return new Response(null, { status: 404, statusText: 'Not Found (cached)' });
      return rangeStart > 0 ? await sliceResponse(hit, rangeStart) : hit;
    }
    fromCache.delete(url);

    const response = await base(input, init);
    if (rangeStart > 0) return response;
    if (response.status === 404) {
      await rememberMissing(open, url);
      return response;
    }
    if (response.status !== 200 || !response.body) return response;
    return storeWhileReading(open, url, response);
  };

  return { fetch: cachedFetch as typeof fetch, servedFromCache: (url) => fromCache.has(url) };
}

/** Deletes every cached Hub file. */
export async function clearHubCache(): Promise<void> {
  if (typeof caches !== 'undefined') await caches.delete(CACHE_NAME);
}

function parseRangeStart(header: string | null): number {
  if (!header) return 0;
  const match = /^bytes=(\d+)-$/.exec(header.trim());
  return match ? Number(match[1]) : 0;
}

/** A 206 response with the bytes of a cached file from `start` to its end. */
async function sliceResponse(hit: Response, start: number): Promise<Response> {
  // A blob read from Cache Storage refers to the stored body, so slicing it reads only the range.
  const blob = await hit.blob();
  if (start >= blob.size) return new Response(null, { status: 416, statusText: 'Range Not Satisfiable' });
  const part = blob.slice(start);
  return new Response(part, {
    status: 206,
    headers: {
      'content-length': String(part.size),
      'content-range': `bytes ${start}-${blob.size - 1}/${blob.size}`,
    },
  });
}

/**
 * Caches a 404 for an optional file (tokenizer_config.json, the shard index, ...) once the same
 * repository and revision has a cached config.json, so that a second load sends no requests.
 * A 404 of config.json itself (a mistyped id) is never cached.
 */
async function rememberMissing(cache: Cache, url: string): Promise<void> {
  const folder = url.slice(0, url.lastIndexOf('/') + 1);
  if (url === `${folder}config.json`) return;
  if (!(await cache.match(`${folder}config.json`))) return;
  await cache.put(url, new Response(null, { status: 404, statusText: 'Not Found' })).catch(() => {});
}

/**
 * Returns a response whose body passes the bytes of `response` through and copies each chunk
 * into a cache entry. The entry is completed when the reader has taken every byte of the
 * Content-Length, and dropped when the reader cancels earlier or the download fails.
 */
function storeWhileReading(cache: Cache, url: string, response: Response): Response {
  const size = Number(response.headers.get('content-length') ?? NaN);
  const encoding = response.headers.get('content-encoding');
  if (!Number.isSafeInteger(size) || (encoding && encoding !== 'identity')) return response;

  let copy!: ReadableStreamDefaultController<Uint8Array>;
  let copyOpen = true;
  const copyStream = new ReadableStream<Uint8Array>({
    start(controller) {
      copy = controller;
    },
    // The cache cancels the copy when it cannot store it, for example over the storage quota.
    cancel() {
      copyOpen = false;
    },
  });
  const headers = { 'content-length': String(size), 'content-type': response.headers.get('content-type') ?? 'application/octet-stream' };
  // A failed put (quota, a dropped entry) only means the next load downloads the file again.
  void cache.put(url, new Response(copyStream, { status: 200, headers })).catch(() => {});

  const finishCopy = (complete: boolean) => {
    if (!copyOpen) return;
    copyOpen = false;
    if (complete) copy.close();
    else copy.error(new Error(`the download of ${url} ended before its last byte`));
  };

  const reader = response.body!.getReader();
  let forwarded = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (error) {
        finishCopy(false);
        throw error;
      }
      if (result.done) {
        finishCopy(forwarded === size);
        controller.close();
        return;
      }
      forwarded += result.value.byteLength;
      if (copyOpen) copy.enqueue(result.value);
      controller.enqueue(result.value);
    },
    async cancel(reason) {
      finishCopy(forwarded === size);
      await reader.cancel(reason);
    },
  });
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}
