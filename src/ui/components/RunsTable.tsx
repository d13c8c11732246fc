// Recorded runs side by side in the layout of the IRepair paper's Tables 1 to 3: one column per
// run, the method and settings, then toxicity, planted-behaviour rate and perplexity as the user
// measured them, then the overheads. The table is kept in browser storage and downloads as CSV,
// or as the JSON runs file that `irepair eval --compare` reads.

import { useMemo } from 'react';
import { compareRuns, comparisonCsv, runsJson } from '../../eval/compare.ts';
import { describeSettings, formatMetric } from '../runsSlice.ts';
import { useWorkbench } from '../context.tsx';

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = name;
  anchor.click();
  // The download starts after click() returns, so the URL must outlive this call.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function MetricValue({ metric, value, best }: { metric: string; value: number | null; best: boolean }) {
  if (value === null) return '–';
  if (best) return <strong>{formatMetric(metric, value)}</strong>;
  return formatMetric(metric, value);
}

export function RunsTable() {
  const records = useWorkbench((state) => state.runs.records);
  const deleteRun = useWorkbench((state) => state.deleteRun);
  const table = useMemo(() => compareRuns(records), [records]);

  return (
    <section className="panel" aria-labelledby="runs-heading">
      <h2 id="runs-heading">Runs</h2>
      <p className="muted small">
        Each finished run, with the evaluations measured after it, kept in this browser. Lower is better in every metric; the best
        value of a row is bold.
      </p>
      {records.length === 0 ? (
        <p className="muted placeholder" data-testid="runs-empty">
          Finished runs appear here, with their overhead and the perplexity, toxicity or planted-behaviour rate measured after them.
        </p>
      ) : (
        <>
          <div className="table-scroll">
            <table className="results-table" data-testid="runs-table">
              <thead>
                <tr>
                  <th scope="col">Metric</th>
                  {table.columns.map((name) => (
                    <th key={name} scope="col" data-testid="runs-column" data-run={name}>
                      {name}{' '}
                      <button type="button" data-testid="delete-run" aria-label={`Delete run ${name}`} title="Delete this run" onClick={() => deleteRun(name)}>
                        ×
                      </button>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {table.details.map((detail) => (
                  <tr key={detail.key} data-testid="runs-row" data-row={detail.key}>
                    <th scope="row">{detail.label}</th>
                    {detail.values.map((value, column) => {
                      const settings = detail.key === 'settings' ? records[column].settings : undefined;
                      return <td key={table.columns[column]}>{settings ? describeSettings(settings) : (value ?? '–')}</td>;
                    })}
                  </tr>
                ))}
                {table.rows.map((row) => (
                  <tr key={row.key} data-testid="runs-row" data-row={row.key}>
                    <th scope="row">{row.label}</th>
                    {row.values.map((value, column) => (
                      <td key={table.columns[column]} data-value={value ?? undefined}>
                        <MetricValue metric={row.key} value={value} best={column === row.best} />
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <div className="field-row">
            <button type="button" data-testid="runs-csv" onClick={() => download('irepair-runs.csv', comparisonCsv(table), 'text/csv')}>
              Download CSV
            </button>
            <button type="button" data-testid="runs-json" onClick={() => download('irepair-runs.json', runsJson(records), 'application/json')}>
              Download JSON
            </button>
          </div>
        </>
      )}
    </section>
  );
}
