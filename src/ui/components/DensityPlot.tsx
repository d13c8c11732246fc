// Error density across blocks, as in Figure 2 of the IRepair paper. The plot shows each block's
// share of the mean sensitivity over a sample of the repair data's bad continuations (D^E), and
// the summary how much denser the errors are in the top 20% of blocks than in the rest.

import { useMemo, useState } from 'react';
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis, type BarShapeProps } from 'recharts';
import { useWorkbench, useWorkerClient } from '../context.tsx';
import { formatDuration, formatValue } from '../format.ts';
import { isRunActive } from '../store.ts';
import type { ModelVersion } from '../../worker/protocol.ts';
import { BusyHint } from './BusyHint.tsx';

/**
 * Largest sample the view measures: the IRepair paper's sample of 2000 examples, 500 sensitivity
 * passes at the batch size of 4. The progress line estimates the time left, and Stop ends the
 * measurement after the current batch.
 */
const MAX_SAMPLE = 2000;

const TOP_COLOR = '#d1495b';
const REST_COLOR = '#3e4989';

interface BlockShare {
  block: number;
  /** Share of the total sensitivity, in percent. */
  share: number;
  sensitivity: number;
  top: boolean;
}

/** Draws one block's bar, with the block and its share as data attributes for tests and tools. */
function BlockBar(props: BarShapeProps) {
  const entry = props.payload as BlockShare;
  return (
    <rect
      data-testid="density-bar"
      data-block={entry.block}
      data-share={entry.share}
      x={props.x}
      y={props.y}
      width={props.width}
      height={props.height}
      fill={entry.top ? TOP_COLOR : REST_COLOR}
    />
  );
}

export function DensityPlot() {
  const [sampleText, setSampleText] = useState('');
  const [model, setModel] = useState<ModelVersion>('original');
  const repair = useWorkbench((state) => state.datasets.repair);
  const modelLoaded = useWorkbench((state) => state.model.status === 'loaded');
  const runActive = useWorkbench((state) => state.run.origin === 'live' && isRunActive(state.run.status));
  const repaired = useWorkbench((state) => state.runs.onModel.length > 0);
  const gpuBusy = useWorkbench((state) => state.evaluation.pending !== null || state.generation.pending || state.exporting.pending || state.workerBusy !== null);
  const workerLost = useWorkbench((state) => state.workerLost);
  const density = useWorkbench((state) => state.density);
  const client = useWorkerClient();

  const examples = repair?.status === 'loaded' ? repair.summary.rows : 0;
  const limit = Math.min(examples, MAX_SAMPLE);
  const sampleSize = sampleText.trim() === '' ? limit : Number(sampleText);
  const sampleValid = Number.isInteger(sampleSize) && sampleSize >= 1 && sampleSize <= limit;
  const pending = density.pending !== null && !workerLost;
  const version = repaired ? model : 'original';
  const canMeasure = modelLoaded && examples > 0 && sampleValid && !runActive && !gpuBusy && !pending && !workerLost;

  const result = density.result;
  const shares = useMemo<BlockShare[]>(() => {
    if (!result) return [];
    const top = new Set(result.density.topBlocks);
    return result.density.relative.map((share, block) => ({
      block,
      share: share * 100,
      sensitivity: result.density.sensitivity[block],
      top: top.has(block),
    }));
  }, [result]);

  const progress = density.progress;
  let sampleError: string | null = null;
  if (examples > 0 && !sampleValid) sampleError = `Enter a whole number from 1 to ${limit}.`;

  return (
    <section className="panel" aria-labelledby="density-heading" data-testid="density-panel">
      <h2 id="density-heading">Error density</h2>
      <p className="muted small">
        Mean block sensitivity over a sample of the repair data's bad continuations, as each block's share of the total. Red bars
        are the top 20% of blocks.
      </p>
      <div className="field-row">
        <label className={sampleError ? 'field field-invalid' : 'field'}>
          Examples (at most {limit || MAX_SAMPLE})
          <input
            data-testid="density-sample-input"
            inputMode="numeric"
            placeholder={String(limit || MAX_SAMPLE)}
            value={sampleText}
            disabled={pending}
            onChange={(event) => setSampleText(event.target.value)}
          />
          {sampleError && <span className="field-error">{sampleError}</span>}
        </label>
        <label className="field">
          Model
          <select data-testid="density-model-select" value={version} disabled={pending} onChange={(event) => setModel(event.target.value as ModelVersion)}>
            <option value="original">Original</option>
            <option value="repaired" disabled={!repaired}>
              Repaired
            </option>
          </select>
        </label>
        {pending ? (
          <button type="button" data-testid="density-stop" disabled={density.stopping} onClick={() => client.send({ kind: 'stopDensity' })}>
            {density.stopping ? 'Stopping…' : 'Stop'}
          </button>
        ) : (
          <button
            type="button"
            data-testid="density-measure"
            disabled={!canMeasure}
            onClick={() => client.send({ kind: 'measureDensity', sampleSize, model: version })}
          >
            Measure
          </button>
        )}
      </div>
      {!pending && <BusyHint testId="density-busy" />}
      {examples === 0 && <p className="muted placeholder">Load a model and repair data to measure where the errors sit.</p>}

      {pending && (
        <div data-testid="density-progress">
          <div className="progress-label">
            <span>Sensitivity batches</span>
            <span className="muted">
              {progress ? `${progress.batchesDone} of ${progress.batchesTotal} · ${formatDuration(progress.etaSeconds)} left` : 'starting'}
            </span>
          </div>
          <progress max={1} value={progress ? progress.batchesDone / progress.batchesTotal : undefined} aria-label="error density batches" />
        </div>
      )}
      {density.stopped && !pending && <p className="muted small">The last measurement was stopped before it finished.</p>}

      {result && (
        <div className="chart" data-testid="density-plot">
          <p data-testid="density-summary">
            {result.model === 'original' ? 'Original' : 'Repaired'} model, {result.density.examples} examples of {result.fileName}: the top{' '}
            {Math.round(result.density.topFraction * 100)}% of blocks ({result.density.topBlocks.length === 1 ? 'block' : 'blocks'}{' '}
            {result.density.topBlocks.join(', ')}) have{' '}
            <strong data-testid="density-ratio" data-ratio={result.density.ratio}>
              {formatValue(result.density.ratio)}×
            </strong>{' '}
            the error density of the other blocks.
          </p>
          <ResponsiveContainer width="100%" height={220}>
            <BarChart data={shares} margin={{ top: 8, right: 8, bottom: 16, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="block" label={{ value: 'block', position: 'insideBottom', offset: -8 }} />
              <YAxis width={44} unit="%" tickFormatter={(value: number) => String(Number(value.toPrecision(3)))} />
              <Tooltip
                formatter={(value, _name, item) => [`${formatValue(Number(value))}% (mean sensitivity ${formatValue((item.payload as BlockShare).sensitivity)})`, 'share']}
                labelFormatter={(block) => `Block ${block}`}
              />
              <Bar dataKey="share" shape={BlockBar} isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
      )}
    </section>
  );
}
