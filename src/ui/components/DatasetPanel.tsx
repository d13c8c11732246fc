// Repair data (prompts with a bad and a good continuation) and optional normal data for the KL
// term. The worker parses and tokenizes the files, and this panel shows its summary and a preview.

import { useWorkbench, useWorkerClient } from '../context.tsx';
import { DroppedFilesError } from '../checkpointFiles.ts';
import { DATASET_EXTENSIONS, checkDatasetFile } from '../datasetFiles.ts';
import { formatValue } from '../format.ts';
import type { DatasetState } from '../store.ts';
import type { DatasetFormat, DatasetRole, DatasetSummary } from '../../worker/protocol.ts';
import { FileDropzone } from './FileDropzone.tsx';

const FORMAT_LABELS: Record<DatasetFormat, string> = {
  pairwise: 'pairwise toxicity (prompt_text, pert_gen_text, unpert_gen_text)',
  preference: 'preference (prompt, rejected, chosen)',
  prompts: 'prompt set',
  text: 'plain text',
};

/** Cells longer than this are cut in the preview, with the full text in the cell's title. */
const PREVIEW_CELL_CHARS = 160;

function TokenLengthBars({ summary }: { summary: DatasetSummary }) {
  const buckets = summary.tokenLengths.histogram;
  const highest = Math.max(1, ...buckets.map((bucket) => bucket.count));
  return (
    <div className="length-bars" aria-label="Token length distribution">
      {buckets.map((bucket, index) => (
        <div
          key={bucket.upTo}
          className="length-bar"
          style={{ height: `${(bucket.count / highest) * 100}%` }}
          title={`${bucket.count} rows of ${index === 0 ? 0 : buckets[index - 1].upTo + 1}–${bucket.upTo} tokens`}
        />
      ))}
    </div>
  );
}

function SummaryView({ summary }: { summary: DatasetSummary }) {
  const lengths = summary.tokenLengths;
  return (
    <div className="dataset-summary-body">
      <dl className="facts">
        <dt>File</dt>
        <dd>{summary.fileName}</dd>
        <dt>Format</dt>
        <dd>{FORMAT_LABELS[summary.format]}</dd>
        <dt>Rows</dt>
        <dd>{summary.rows}</dd>
        <dt>Tokens per row</dt>
        <dd>
          min {lengths.min}, median {lengths.p50}, mean {formatValue(lengths.mean)}, 95th percentile {lengths.p95}, max {lengths.max}
        </dd>
        <dt>Truncated</dt>
        <dd>
          {summary.truncatedRows} rows longer than the context of {summary.contextLength} tokens
        </dd>
      </dl>
      {lengths.histogram.length > 0 && <TokenLengthBars summary={summary} />}
      {summary.warnings.length > 0 && (
        <ul className="warnings">
          {summary.warnings.map((warning) => (
            <li key={warning}>{warning}</li>
          ))}
        </ul>
      )}
      {summary.preview.length > 0 && (
        <div className="table-scroll">
          <table className="preview-table" data-testid="dataset-preview">
            <thead>
              <tr>
                {summary.fields.map((field) => (
                  <th key={field}>{field}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {summary.preview.map((row, index) => (
                <tr key={index}>
                  {summary.fields.map((field) => {
                    const text = row[field] ?? '';
                    return (
                      <td key={field} title={text}>
                        {text.length > PREVIEW_CELL_CHARS ? `${text.slice(0, PREVIEW_CELL_CHARS)}…` : text}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function DatasetStatus({ state, emptyText }: { state: DatasetState | undefined; emptyText: string }) {
  if (!state) return <p className="muted">{emptyText}</p>;
  if (state.status === 'loading') return <p>Reading {state.fileName}…</p>;
  return <SummaryView summary={state.summary} />;
}

export function DatasetPanel() {
  const repair = useWorkbench((state) => state.datasets.repair);
  const normal = useWorkbench((state) => state.datasets.normal);
  const workerLost = useWorkbench((state) => state.workerLost);
  const reportError = useWorkbench((state) => state.reportError);
  const client = useWorkerClient();

  const load = (files: File[], role: DatasetRole) => {
    try {
      client.send({ kind: 'loadDataset', file: checkDatasetFile(files, role), role });
    } catch (error) {
      if (!(error instanceof DroppedFilesError)) throw error;
      reportError(error.message, false, `data:${role}`);
    }
  };

  return (
    <section className="panel" aria-labelledby="dataset-heading">
      <h2 id="dataset-heading">Data</h2>
      <FileDropzone
        testId="dataset-dropzone"
        title="Drop repair data"
        hint="JSONL, JSON or CSV with prompt_text, pert_gen_text and unpert_gen_text, or prompt, rejected and chosen"
        accept={DATASET_EXTENSIONS.repair.join(',')}
        disabled={workerLost}
        onFiles={(files) => load(files, 'repair')}
      />
      <div className="dataset-summary" data-testid="dataset-summary">
        <DatasetStatus
          state={repair}
          emptyText="No repair data loaded."
        />
      </div>

      <h3>Normal data (optional)</h3>
      <FileDropzone
        testId="normal-dropzone"
        title="Drop normal data for the KL term"
        hint="Plain text (.txt), for example a sample of the pre-training corpus"
        accept={DATASET_EXTENSIONS.normal.join(',')}
        disabled={workerLost}
        onFiles={(files) => load(files, 'normal')}
      />
      <div className="dataset-summary" data-testid="normal-summary">
        <DatasetStatus state={normal} emptyText="No normal data loaded." />
      </div>
    </section>
  );
}
