// The toxicity classifier: a text-classification model from the Hub (through the endpoint of the
// model panel) or from a dropped folder, which the worker loads with transformers.js.

import { useState } from 'react';
import { checkHubEndpoint, DEFAULT_REVISION, isValidRepoId } from '../catalog.ts';
import { DroppedFilesError } from '../checkpointFiles.ts';
import { selectClassifierFiles } from '../classifierFiles.ts';
import { useWorkbench, useWorkerClient } from '../context.tsx';
import { CLASSIFIER_WEIGHT_FILES, DEFAULT_TOXICITY_CLASSIFIER, type ClassifierDtype } from '../../eval/toxicity.ts';
import { FileDropzone } from './FileDropzone.tsx';
import { ProgressList } from './ProgressList.tsx';

type DtypeChoice = ClassifierDtype | 'auto';

const DTYPE_CHOICES: { value: DtypeChoice; label: string }[] = [
  { value: 'auto', label: 'Automatic: q8 from the Hub, fp32 from a folder that has it' },
  ...Object.entries(CLASSIFIER_WEIGHT_FILES).map(([dtype, file]) => ({ value: dtype as ClassifierDtype, label: `${dtype} (onnx/${file})` })),
];

export function ToxicityClassifier() {
  const [repo, setRepo] = useState(DEFAULT_TOXICITY_CLASSIFIER);
  const [revision, setRevision] = useState(DEFAULT_REVISION);
  const [dtype, setDtype] = useState<DtypeChoice>('auto');
  const endpoint = useWorkbench((state) => state.hubEndpoint);
  const classifier = useWorkbench((state) => state.classifier);
  const workerLost = useWorkbench((state) => state.workerLost);
  const reportError = useWorkbench((state) => state.reportError);
  const client = useWorkerClient();
  const busy = classifier.loading !== null || workerLost;

  const loadFromHub = () => {
    const repoId = repo.trim();
    const revisionName = revision.trim();
    if (!isValidRepoId(repoId)) {
      reportError(`Classifier id "${repoId}" is invalid: enter owner/name, for example ${DEFAULT_TOXICITY_CLASSIFIER}.`);
      return;
    }
    if (!/^\S+$/.test(revisionName)) {
      reportError(`Classifier revision "${revisionName}" is invalid: enter a branch, tag or commit hash without spaces.`);
      return;
    }
    const checked = checkHubEndpoint(endpoint.trim());
    if ('error' in checked) {
      reportError(`${checked.error} The classifier downloads from the endpoint set in the Model panel.`);
      return;
    }
    client.send({ kind: 'loadClassifier', source: { kind: 'hub', repo: repoId, revision: revisionName, endpoint: checked.endpoint, dtype } });
  };

  const loadFromFiles = (dropped: File[]) => {
    try {
      const selection = selectClassifierFiles(dropped);
      const folder = selection.folder || 'the dropped files';
      client.send({ kind: 'loadClassifier', source: { kind: 'files', files: selection.files, folder, dtype } });
    } catch (error) {
      if (!(error instanceof DroppedFilesError)) throw error;
      reportError(error.message);
    }
  };

  return (
    <div className="toxicity-classifier">
      <h4>Toxicity classifier</h4>
      <form
        className="hub-form"
        onSubmit={(event) => {
          event.preventDefault();
          loadFromHub();
        }}
      >
        <div className="field-row">
          <label className="grow">
            Hugging Face classifier id
            <input data-testid="classifier-input" value={repo} spellCheck={false} onChange={(event) => setRepo(event.target.value)} />
          </label>
          <label>
            Revision
            <input data-testid="classifier-revision-input" value={revision} spellCheck={false} onChange={(event) => setRevision(event.target.value)} />
          </label>
        </div>
        <label>
          Weights
          <select data-testid="classifier-dtype-select" value={dtype} onChange={(event) => setDtype(event.target.value as DtypeChoice)}>
            {DTYPE_CHOICES.map((choice) => (
              <option key={choice.value} value={choice.value}>
                {choice.label}
              </option>
            ))}
          </select>
        </label>
        <p className="muted small">Downloads from the Hub endpoint of the Model panel and stays in the browser cache. Scoring runs on the CPU (WebAssembly).</p>
        <button type="submit" data-testid="classifier-load" disabled={busy}>
          {classifier.loading !== null ? 'Loading…' : 'Load classifier'}
        </button>
      </form>

      <FileDropzone
        testId="classifier-dropzone"
        title="Or drop a classifier folder"
        hint="config.json, tokenizer.json, tokenizer_config.json and onnx/model.onnx (or another variant under onnx/)"
        multiple
        allowFolder
        disabled={busy}
        onFiles={loadFromFiles}
      />

      <ProgressList stages={['classifier']} testId="classifier-progress" />

      <div className="model-status" data-testid="classifier-status">
        {classifier.loading !== null && <p>Loading {classifier.loading}…</p>}
        {classifier.loaded ? (
          <p>
            {`Loaded ${classifier.loaded.label} (${classifier.loaded.dtype}). Toxicity is the probability of its label ` +
              `"${classifier.loaded.toxicLabel}" (labels: ${classifier.loaded.labels.join(', ')}).`}
          </p>
        ) : (
          classifier.loading === null && <p className="muted">Load a classifier to measure toxicity.</p>
        )}
      </div>
    </div>
  );
}
