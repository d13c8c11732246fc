// Before and after: the original and the repaired model side by side, on a prompt and on the
// evaluation metrics.

import { useState } from 'react';
import { useWorkbench, useWorkerClient } from '../context.tsx';
import { DroppedFilesError } from '../checkpointFiles.ts';
import { DATASET_EXTENSIONS, checkDatasetFile } from '../datasetFiles.ts';
import { formatValue } from '../format.ts';
import { isRunActive } from '../store.ts';
import type { DatasetRole, EvaluationMetric, ModelVersion } from '../../worker/protocol.ts';
import { FileDropzone } from './FileDropzone.tsx';
import { ProgressList } from './ProgressList.tsx';
import { ToxicityClassifier } from './ToxicityClassifier.tsx';
import { ToxicityResults } from './ToxicityResults.tsx';
import { BusyHint } from './BusyHint.tsx';

const MODEL_LABELS: Record<ModelVersion, string> = { original: 'Original', repaired: 'Repaired' };

const METRICS: { metric: EvaluationMetric; label: string; role: DatasetRole; unit: string; plantedOnly?: boolean }[] = [
  { metric: 'perplexity', label: 'Perplexity', role: 'text', unit: 'lower is better' },
  { metric: 'toxicity', label: 'Toxicity', role: 'prompts', unit: 'mean score of the generations, lower is better' },
  {
    metric: 'planted',
    label: 'Planted behaviour',
    role: 'prompts',
    unit: 'share of sampled continuations with a word of planted.json, lower is better',
    plantedOnly: true,
  },
];

/** Formats an evaluation result: a share as a percentage, any other metric with four significant digits. */
function formatResult(metric: EvaluationMetric, value: number | undefined): string {
  if (metric !== 'planted' || value === undefined) return formatValue(value);
  return `${(value * 100).toFixed(1)}%`;
}

/** Prompts or text chunks per evaluation, to keep a browser evaluation within minutes. */
const EVALUATION_EXAMPLES = 200;

export function ComparePanel() {
  const [prompt, setPrompt] = useState('');
  const [maxNewTokens, setMaxNewTokens] = useState(40);
  const [temperature, setTemperature] = useState(0);
  const [seed, setSeed] = useState(0);
  const modelLoaded = useWorkbench((state) => state.model.status === 'loaded');
  const runActive = useWorkbench((state) => state.run.origin === 'live' && isRunActive(state.run.status));
  const repaired = useWorkbench((state) => state.run.origin === 'live' && state.run.steps.length > 0);
  const generation = useWorkbench((state) => state.generation);
  const evaluation = useWorkbench((state) => state.evaluation);
  const datasets = useWorkbench((state) => state.datasets);
  const classifierReady = useWorkbench((state) => state.classifier.loaded !== null && state.classifier.loading === null);
  // Only a model that came with a planted.json (the demo) has a planted behaviour to measure.
  const hasPlanted = useWorkbench((state) => state.model.status === 'loaded' && state.model.planted !== undefined);
  const reportError = useWorkbench((state) => state.reportError);
  const client = useWorkerClient();

  const models: ModelVersion[] = repaired ? ['original', 'repaired'] : ['original'];
  const workerBusy = useWorkbench((state) => state.workerBusy !== null);
  const gpuFree = modelLoaded && !runActive && !workerBusy;
  const validSettings = Number.isInteger(maxNewTokens) && maxNewTokens >= 1 && temperature >= 0 && Number.isInteger(seed);

  const generate = () => {
    client.send({ kind: 'generate', prompt, models, options: { maxNewTokens, temperature, topK: 50, seed } });
  };

  const loadEvaluationData = (files: File[], role: DatasetRole) => {
    try {
      client.send({ kind: 'loadDataset', file: checkDatasetFile(files, role), role });
    } catch (error) {
      if (!(error instanceof DroppedFilesError)) throw error;
      reportError(error.message, false, `data:${role}`);
    }
  };

  return (
    <section className="panel" aria-labelledby="compare-heading">
      <h2 id="compare-heading">Before and after</h2>
      <div className="generate-form">
        <label>
          Prompt
          <textarea
            data-testid="generate-prompt"
            rows={2}
            value={prompt}
            placeholder="Type a prompt to continue"
            onChange={(event) => setPrompt(event.target.value)}
          />
        </label>
        <div className="field-row">
          <label>
            New tokens
            <input type="number" min={1} max={512} value={maxNewTokens} onChange={(event) => setMaxNewTokens(event.target.valueAsNumber)} />
          </label>
          <label>
            Temperature (0 = greedy)
            <input type="number" min={0} step={0.1} value={temperature} onChange={(event) => setTemperature(event.target.valueAsNumber)} />
          </label>
          <label>
            Seed
            <input type="number" min={0} value={seed} onChange={(event) => setSeed(event.target.valueAsNumber)} />
          </label>
          <button
            type="button"
            data-testid="generate-button"
            disabled={!gpuFree || prompt.trim() === '' || !validSettings || generation.pending}
            onClick={generate}
          >
            {generation.pending ? 'Generating…' : 'Generate'}
          </button>
        </div>
        <BusyHint testId="compare-busy" />
      </div>

      <div className="side-by-side">
        {(['original', 'repaired'] as const).map((version) => {
          const output = generation.outputs[version];
          return (
            <div key={version} className="generation" data-testid={`generation-${version}`}>
              <h3>{MODEL_LABELS[version]}</h3>
              {output ? (
                <p>
                  <span className="prompt-text">{generation.prompt}</span>
                  {output.text}
                  {!output.done && <span className="cursor">▍</span>}
                </p>
              ) : (
                <p className="muted">
                  {version === 'repaired' && !repaired ? 'Available after a repair run in this session.' : 'No generation yet.'}
                </p>
              )}
            </div>
          );
        })}
      </div>

      <h3>Evaluation</h3>
      <div className="evaluation-inputs">
        <FileDropzone
          testId="text-dropzone"
          title="Text for perplexity"
          hint={datasets.text?.fileName ?? 'A .txt file, for example WikiText-2'}
          accept={DATASET_EXTENSIONS.text.join(',')}
          onFiles={(files) => loadEvaluationData(files, 'text')}
        />
        <FileDropzone
          testId="prompts-dropzone"
          title="Prompts for toxicity"
          hint={datasets.prompts?.fileName ?? 'JSONL, JSON or CSV with prompt or prompt_text'}
          accept={DATASET_EXTENSIONS.prompts.join(',')}
          onFiles={(files) => loadEvaluationData(files, 'prompts')}
        />
      </div>
      <ToxicityClassifier />
      <table className="results-table" data-testid="evaluation-results">
        <thead>
          <tr>
            <th>Metric</th>
            <th>Original</th>
            <th>Repaired</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {METRICS.filter((entry) => !entry.plantedOnly || hasPlanted).map(({ metric, label, role, unit }) => {
            const results = evaluation.results[metric];
            // Toxicity also needs a classifier, and its continuations use the generation settings above.
            const ready =
              gpuFree &&
              datasets[role]?.status === 'loaded' &&
              evaluation.pending === null &&
              (metric !== 'toxicity' || (classifierReady && validSettings));
            const generationOptions = metric === 'toxicity' ? { maxNewTokens, temperature, topK: 50, seed } : undefined;
            return (
              <tr key={metric} data-testid={`evaluation-${metric}`}>
                <td>
                  {label} <span className="muted small">({unit})</span>
                </td>
                <td>{formatResult(metric, results?.original?.value)}</td>
                <td>{formatResult(metric, results?.repaired?.value)}</td>
                <td>
                  <button
                    type="button"
                    data-testid={`evaluate-${metric}`}
                    disabled={!ready}
                    onClick={() =>
                      client.send({ kind: 'evaluate', metric, models, maxExamples: EVALUATION_EXAMPLES, generation: generationOptions })
                    }
                  >
                    {evaluation.pending === metric ? 'Measuring…' : 'Measure'}
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted small">
        Toxicity scores one continuation of each of the first {EVALUATION_EXAMPLES} prompts, generated with the New tokens,
        Temperature and Seed settings above.
      </p>
      <ProgressList stages={['evaluate']} testId="evaluation-progress" />
      <ToxicityResults />
    </section>
  );
}
