// A dropped classifier folder, served to transformers.js as if it were a Hub repository. The
// worker points transformers.js at a base URL under the reserved `.invalid` top-level domain and
// gives it a fetch that serves those URLs from the dropped files. Such URLs cannot resolve
// (RFC 6761), and this fetch never passes them on, so loading a dropped folder sends no request.

import { CLASSIFIER_WEIGHT_FILES, type ClassifierDtype } from '../eval/toxicity.ts';
import { UserError } from '../model/errors.ts';

/** A file of a dropped classifier folder. */
export interface ClassifierFile {
  /** Path inside the classifier folder, with `/` separators: `config.json`, `onnx/model.onnx`. */
  path: string;
  file: File;
}

/** Base URL of dropped classifier folders. */
export const DROPPED_CLASSIFIER_HOST = 'https://dropped-classifier.invalid/';

/**
 * Weight variants tried for a dropped folder when the user picks none. fp32 comes first because
 * local files cost no download and fp32 gives the scores `irepair score` computes.
 */
const DROPPED_DTYPE_ORDER: ClassifierDtype[] = ['fp32', 'q8', 'fp16', 'int8', 'uint8', 'q4', 'bnb4', 'q4f16'];

/**
 * Picks the weight variant to load from a dropped folder: `requested` when its file is present,
 * else, for 'auto', the first present variant of DROPPED_DTYPE_ORDER. Throws UserError naming the
 * folder when no matching ONNX file is present.
 */
export function chooseDroppedDtype(paths: readonly string[], requested: ClassifierDtype | 'auto', folder: string): ClassifierDtype {
  const present = new Set(paths);
  const onnxFiles = paths.filter((path) => path.startsWith('onnx/') && path.endsWith('.onnx'));
  const listed = onnxFiles.length > 0 ? `Its ONNX files are ${onnxFiles.join(', ')}.` : 'It has no ONNX files under onnx/.';

  if (requested !== 'auto') {
    const expectedPath = `onnx/${CLASSIFIER_WEIGHT_FILES[requested]}`;
    if (present.has(expectedPath)) return requested;
    throw new UserError(`${folder} has no ${expectedPath}, the weight file of dtype ${requested}. ${listed} Choose the dtype of one of them.`);
  }
  const found = DROPPED_DTYPE_ORDER.find((dtype) => present.has(`onnx/${CLASSIFIER_WEIGHT_FILES[dtype]}`));
  if (found) return found;
  const expected = DROPPED_DTYPE_ORDER.map((dtype) => CLASSIFIER_WEIGHT_FILES[dtype]).join(', ');
  throw new UserError(`${folder} has no classifier weights: expected onnx/model.onnx or another of ${expected} under onnx/. ${listed}`);
}

/**
 * Returns a fetch that serves GET requests for `{baseUrl}{path}` from the file at `path`, with
 * Content-Length, and a 206 response for a single byte range (transformers.js requests
 * `bytes=0-0` to read a file's size). Paths that are not among the files get a 404. Requests
 * outside `baseUrl` go to `fallback`.
 */
export function classifierFilesFetch(
  files: readonly ClassifierFile[],
  baseUrl: string,
  fallback: (input: string | URL, init?: RequestInit) => Promise<Response>,
): (input: string | URL, init?: RequestInit) => Promise<Response> {
  const byPath = new Map(files.map((entry) => [entry.path, entry.file]));

  return async (input, init) => {
    const url = String(input);
    if (!url.startsWith(baseUrl)) return fallback(input, init);

    const method = (init?.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD') return new Response(null, { status: 405, statusText: 'Method Not Allowed' });
    const path = decodeURIComponent(url.slice(baseUrl.length).split(/[?#]/)[0]);
    const file = byPath.get(path);
    if (!file) return new Response(null, { status: 404, statusText: 'Not Found' });

    const body = (blob: Blob) => (method === 'HEAD' ? null : blob);
    const range = parseByteRange(new Headers(init?.headers).get('range'), file.size);
    if (range === 'unsatisfiable') {
      return new Response(null, { status: 416, statusText: 'Range Not Satisfiable', headers: { 'content-range': `bytes */${file.size}` } });
    }
    if (range) {
      const part = file.slice(range.start, range.end + 1);
      return new Response(body(part), {
        status: 206,
        headers: {
          'content-length': String(part.size),
          'content-range': `bytes ${range.start}-${range.end}/${file.size}`,
        },
      });
    }
    return new Response(body(file), { status: 200, headers: { 'content-length': String(file.size) } });
  };
}

/**
 * Parses a Range header of one range, `bytes=a-b`, `bytes=a-` or `bytes=-n`, into inclusive byte
 * offsets. Returns null for no header or a form this parser does not read (the whole file is
 * then sent, as HTTP allows), and 'unsatisfiable' for a range that starts past the end.
 */
export function parseByteRange(header: string | null, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (start >= size) return 'unsatisfiable';
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (end < start) return null;
  return { start, end };
}
