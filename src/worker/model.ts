// Loading a model in the worker. The checkpoint's files come from the Hub (through the browser
// cache) or from dropped files. config.json, the weight headers and the tokenizer are read first,
// then the memory plan is checked against the device's limits, and then the weights stream into
// GPU buffers tensor by tensor.

import { loadEngine, type GptEngine } from '../engine/gpt.ts';
import type { Gpu } from '../gpu/device.ts';
import { parsePlantedBehaviour, type PlantedBehaviour } from '../eval/planted.ts';
import { openCheckpoint, type Checkpoint } from '../model/checkpoint.ts';
import { UserError } from '../model/errors.ts';
import { hubDirectory, hubFileUrl } from '../model/hub.ts';
import { blobDirectory, type CheckpointFiles } from '../model/sources.ts';
import { loadTokenizer, type Tokenizer } from '../model/tokenizer.ts';
import { readLimits } from './adapter.ts';
import type { HubCache } from './hub-cache.ts';
import { planModel, weightProblems } from './plan.ts';
import type { ProgressReporter } from './progress.ts';
import type { ModelPlan, ModelSource } from './protocol.ts';

export interface LoadedModel {
  /** The original weights' source, reread on export for every tensor the repair left unchanged. */
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
  engine: GptEngine;
  /** `openai-community/gpt2@main`, or the dropped folder's name. */
  label: string;
  /** Base name for exported archives, such as `gpt2`. */
  name: string;
  plan: ModelPlan;
}

/** The checkpoint's files and tokenizer, read before any GPU memory is allocated. */
export interface OpenedModel {
  checkpoint: Checkpoint;
  tokenizer: Tokenizer;
  label: string;
  name: string;
  /** The planted behaviour of a demo model, from planted.json next to config.json; null without that file. */
  planted: PlantedBehaviour | null;
}

/** File that marks a demo model and lists the words of its planted behaviour. */
export const PLANTED_FILE = 'planted.json';

/** Returns the dropped folder's path as the page sent it, else from a picked folder's relative paths. */
function droppedFolder(source: Extract<ModelSource, { kind: 'files' }>): string | null {
  if (source.folder) return source.folder;
  const path = source.files.map((file) => file.webkitRelativePath).find((relative) => relative.includes('/'));
  return path ? path.slice(0, path.lastIndexOf('/')) : null;
}

/** Opens the checkpoint's files; Hub downloads report progress per file. */
export async function openModel(source: ModelSource, hubCache: HubCache, progress: ProgressReporter): Promise<OpenedModel> {
  let files: CheckpointFiles;
  let label: string;
  let name: string;
  if (source.kind === 'hub') {
    const { repo, revision, endpoint } = source;
    files = await hubDirectory({
      repo,
      revision,
      endpoint,
      fetch: hubCache.fetch,
      onProgress: (file, loadedBytes, totalBytes) => {
        const cached = hubCache.servedFromCache(hubFileUrl(endpoint, repo, revision, file));
        progress(cached ? 'read' : 'download', file, loadedBytes, totalBytes, cached ? 'from the browser cache' : '');
      },
    });
    label = `${repo}@${revision}`;
    name = repo.slice(repo.lastIndexOf('/') + 1);
  } else {
    if (source.files.length === 0) throw new UserError('No files were dropped. Drop a model folder or its files.');
    const folder = droppedFolder(source);
    label = folder ?? `${source.files.length} local file${source.files.length === 1 ? '' : 's'}`;
    name = folder ? folder.slice(folder.lastIndexOf('/') + 1) : 'model';
    files = blobDirectory(source.files, folder ?? 'the dropped files');
  }

  const checkpoint = await openCheckpoint(files);
  const tokenizer = await loadTokenizer(files);
  const planted = files.names().includes(PLANTED_FILE)
    ? parsePlantedBehaviour(await files.readText(PLANTED_FILE), `${PLANTED_FILE} in ${label}`)
    : null;
  return { checkpoint, tokenizer, label, name, planted };
}

/**
 * Plans GPU memory for the opened model, sends the plan, rejects a model that does not fit the
 * device's limits, and uploads the weights.
 */
export async function uploadModel(
  gpu: Gpu,
  opened: OpenedModel,
  progress: ProgressReporter,
  onPlanned: (plan: ModelPlan) => void,
): Promise<LoadedModel> {
  const { checkpoint } = opened;
  const limits = readLimits(gpu.device.limits);
  const plan = planModel(checkpoint, limits);
  onPlanned(plan);
  // A batch that does not fit only limits the run settings, which the start command checks.
  const blocking = weightProblems(checkpoint.tensors, limits);
  if (blocking.length > 0) {
    throw new UserError(`${opened.label} does not fit this GPU. ${blocking.join(' ')}`);
  }

  // Bytes per weight file, so that the upload reports progress in bytes like the download.
  const fileBytes = new Map<string, number>();
  for (const tensor of checkpoint.storedTensors) fileBytes.set(tensor.file, Math.max(fileBytes.get(tensor.file) ?? 0, tensor.end));
  const entries = new Map(checkpoint.tensors.map((entry) => [entry.name, entry]));
  const engine = await loadEngine(gpu, checkpoint, (_loaded, _total, name) => {
    const entry = entries.get(name)!;
    progress('upload', entry.file, entry.end, fileBytes.get(entry.file) ?? entry.end);
  });
  for (const [file, bytes] of fileBytes) progress('upload', file, bytes, bytes);
  return { ...opened, engine, plan };
}
