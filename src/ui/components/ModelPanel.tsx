// Model source: a Hub repository (endpoint and revision configurable) or a dropped checkpoint
// folder. Shows the architecture, parameter count and memory against the adapter's limits.

import { useState } from 'react';
import {
  CATALOG,
  checkHubEndpoint,
  DEFAULT_REPO,
  DEFAULT_REVISION,
  findCatalogModel,
  fitWeights,
  isValidRepoId,
  parameterCount,
  type ModelShape,
} from '../catalog.ts';
import { DroppedFilesError, selectCheckpointFiles } from '../checkpointFiles.ts';
import { useWorkbench, useWorkerClient } from '../context.tsx';
import { formatBytes, formatCount } from '../format.ts';
import { isRunActive } from '../store.ts';
import type { AdapterLimits, ModelPlan } from '../../worker/protocol.ts';
import { FileDropzone } from './FileDropzone.tsx';
import { ProgressList } from './ProgressList.tsx';

const ARCHITECTURE_NAMES: Record<string, string> = { gpt2: 'GPT-2', gpt_neo: 'GPT-Neo' };

/** Checks the Hub fields and returns the endpoint without a trailing slash, or an error message. */
function checkHubFields(repo: string, revision: string, endpoint: string): { endpoint: string } | { error: string } {
  if (!isValidRepoId(repo)) {
    return { error: `Hub model id "${repo}" is invalid: enter owner/name, for example ${DEFAULT_REPO}.` };
  }
  if (!/^[^\s]+$/.test(revision)) {
    return { error: `Revision "${revision}" is invalid: enter a branch, tag or commit hash without spaces.` };
  }
  return checkHubEndpoint(endpoint);
}

function LimitsLine({ limits }: { limits: AdapterLimits }) {
  return (
    <span>
      max storage binding {formatBytes(limits.maxStorageBufferBindingSize)}, max buffer {formatBytes(limits.maxBufferSize)}
    </span>
  );
}

/** Size of a catalog model before anything is downloaded: weights only, from the published shape. */
function CatalogPreview({ repo, shape, limits }: { repo: string; shape: ModelShape; limits: AdapterLimits | null }) {
  const fit = limits ? fitWeights(shape, limits) : null;
  return (
    <div data-testid="model-preview">
      <h3>Before loading: {repo}</h3>
      <p className="muted small">Published size of this Hub model. Nothing is downloaded until you press Load from the Hub.</p>
      <dl className="facts">
        <dt>Architecture</dt>
        <dd>
          {ARCHITECTURE_NAMES[shape.architecture]}, {shape.numLayers} blocks, width {shape.hiddenSize}, {shape.numHeads} heads,
          context {shape.contextLength}
        </dd>
        <dt>Parameters</dt>
        <dd>{formatCount(parameterCount(shape))}</dd>
        <dt>Weights (f32)</dt>
        <dd>{formatBytes(parameterCount(shape) * 4)}</dd>
        {fit && limits && (
          <>
            <dt>Largest tensor</dt>
            <dd>
              wte {formatBytes(fit.largestTensorBytes)}:{' '}
              {fit.bindingsForLargest > 1 ? `split across ${fit.bindingsForLargest} bindings` : 'fits one binding'} (
              <LimitsLine limits={limits} />)
            </dd>
          </>
        )}
      </dl>
    </div>
  );
}

/** Shows the engine's plan, which the worker sends once config.json and the weight headers are read. */
function PlanView({ plan }: { plan: ModelPlan }) {
  return (
    <dl className="facts" data-testid="model-plan">
      <dt>Architecture</dt>
      <dd>
        {ARCHITECTURE_NAMES[plan.architecture] ?? plan.architecture}, {plan.numLayers} blocks, width {plan.hiddenSize},{' '}
        {plan.numHeads} heads, context {plan.contextLength}
      </dd>
      <dt>Parameters</dt>
      <dd>{formatCount(plan.parameterCount)}</dd>
      <dt>Planned GPU memory</dt>
      <dd>
        {formatBytes(plan.plannedBytes)} for a repair batch of {plan.plannedShape.batchSize} × {plan.plannedShape.seqLen} tokens
      </dd>
      <dt>Largest tensor</dt>
      <dd>
        {formatBytes(plan.largestTensorBytes)} (<LimitsLine limits={plan.adapterLimits} />)
      </dd>
      {plan.problems.length > 0 && (
        <>
          <dt>Does not fit</dt>
          <dd className="problems">
            <ul>
              {plan.problems.map((problem) => (
                <li key={problem}>{problem}</li>
              ))}
            </ul>
          </dd>
        </>
      )}
    </dl>
  );
}

export function ModelPanel() {
  const [repo, setRepo] = useState(DEFAULT_REPO);
  const [revision, setRevision] = useState(DEFAULT_REVISION);
  // The toxicity classifier downloads from the same endpoint, so the field's text lives in the store.
  const endpoint = useWorkbench((state) => state.hubEndpoint);
  const setEndpoint = useWorkbench((state) => state.setHubEndpoint);
  const model = useWorkbench((state) => state.model);
  const adapter = useWorkbench((state) => state.adapter);
  const runActive = useWorkbench((state) => state.run.origin === 'live' && isRunActive(state.run.status));
  const workerLost = useWorkbench((state) => state.workerLost);
  const reportError = useWorkbench((state) => state.reportError);
  const client = useWorkerClient();

  const limits = adapter?.available ? adapter.adapter.limits : null;
  const busy = model.status === 'loading' || runActive || workerLost;
  const catalogModel = findCatalogModel(repo);
  // The catalog preview describes the id in the input, so it shows only while nothing else is loading.
  const showPreview = model.status === 'idle' || (model.status === 'loading' && model.sourceLabel?.startsWith(`${repo.trim()}@`));

  const loadFromHub = () => {
    const checked = checkHubFields(repo.trim(), revision.trim(), endpoint.trim());
    if ('error' in checked) {
      reportError(checked.error, false, 'model');
      return;
    }
    client.send({ kind: 'loadModel', source: { kind: 'hub', repo: repo.trim(), revision: revision.trim(), endpoint: checked.endpoint } });
  };

  const loadFromFiles = (dropped: File[]) => {
    try {
      const selection = selectCheckpointFiles(dropped);
      client.send({ kind: 'loadModel', source: { kind: 'files', files: selection.files, folder: selection.folder } });
    } catch (error) {
      if (!(error instanceof DroppedFilesError)) throw error;
      reportError(error.message, false, 'model');
    }
  };

  return (
    <section className="panel" aria-labelledby="model-heading">
      <h2 id="model-heading">Model</h2>

      <form
        className="hub-form"
        onSubmit={(event) => {
          event.preventDefault();
          loadFromHub();
        }}
      >
        <label>
          Hugging Face model id
          <input
            data-testid="hub-model-input"
            list="hub-models"
            value={repo}
            spellCheck={false}
            onChange={(event) => setRepo(event.target.value)}
          />
        </label>
        <datalist id="hub-models">
          {CATALOG.map((entry) => (
            <option key={entry.repo} value={entry.repo}>
              {entry.label}
            </option>
          ))}
        </datalist>
        <div className="field-row">
          <label>
            Revision
            <input data-testid="hub-revision-input" value={revision} spellCheck={false} onChange={(event) => setRevision(event.target.value)} />
          </label>
          <label className="grow">
            Hub endpoint
            <input data-testid="hub-endpoint-input" value={endpoint} spellCheck={false} onChange={(event) => setEndpoint(event.target.value)} />
          </label>
        </div>
        <button type="submit" data-testid="hub-load" disabled={busy}>
          {model.status === 'loading' ? 'Loading…' : 'Load from the Hub'}
        </button>
      </form>

      <FileDropzone
        testId="model-dropzone"
        title="Or drop a checkpoint folder"
        hint="config.json, model.safetensors (or its shards and index) and tokenizer.json, or vocab.json and merges.txt"
        multiple
        allowFolder
        disabled={busy}
        onFiles={loadFromFiles}
      />

      <ProgressList stages={['download', 'read', 'upload']} testId="load-progress" />

      <div className="model-status" data-testid="model-status">
        {model.status === 'idle' && <p>Not loaded.</p>}
        {model.status === 'loaded' && <p>Loaded {model.sourceLabel}.</p>}
        {model.status === 'loading' && <p>Loading {model.sourceLabel}…</p>}
        {model.plan ? (
          <PlanView plan={model.plan} />
        ) : (
          showPreview && catalogModel && <CatalogPreview repo={catalogModel.repo} shape={catalogModel.shape} limits={limits} />
        )}
      </div>
    </section>
  );
}
