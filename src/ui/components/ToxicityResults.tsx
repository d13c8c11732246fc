// Toxicity of the original and the repaired model: the mean score on the 0 to 100 scale, the
// share of continuations the classifier finds toxic, the distribution of the scores, and every
// continuation with its score.

import { useMemo } from 'react';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { useWorkbench } from '../context.tsx';
import { TOXIC_THRESHOLD } from '../../eval/toxicity.ts';
import type { ModelVersion, ToxicityDetails } from '../../worker/protocol.ts';

const MODEL_LABELS: Record<ModelVersion, string> = { original: 'Original', repaired: 'Repaired' };

const BAR_COLORS: Record<ModelVersion, string> = { original: '#3e4989', repaired: '#35b779' };

/** Formats a score on the 0 to 100 scale with two decimals. */
function formatScore(score: number): string {
  return score.toFixed(2);
}

/** Builds one chart row per histogram bin, with the count of each model version. */
function histogramRows(details: Partial<Record<ModelVersion, ToxicityDetails>>): Record<string, number | string>[] {
  const bins = (details.original ?? details.repaired)?.histogram ?? [];
  return bins.map((bin, index) => {
    const row: Record<string, number | string> = { bin: `${bin.from.toFixed(0)}–${bin.to.toFixed(0)}` };
    for (const version of ['original', 'repaired'] as const) {
      const count = details[version]?.histogram[index]?.count;
      if (count !== undefined) row[version] = count;
    }
    return row;
  });
}

export function ToxicityResults() {
  const results = useWorkbench((state) => state.evaluation.results.toxicity);
  const details = useMemo(() => {
    const byVersion: Partial<Record<ModelVersion, ToxicityDetails>> = {};
    for (const version of ['original', 'repaired'] as const) {
      const entry = results?.[version]?.toxicity;
      if (entry) byVersion[version] = entry;
    }
    return byVersion;
  }, [results]);
  const versions = (['original', 'repaired'] as const).filter((version) => details[version]);
  const rows = useMemo(() => histogramRows(details), [details]);
  if (versions.length === 0) return null;
  const scorer = details[versions[0]]!;

  return (
    <div className="toxicity-results" data-testid="toxicity-results">
      <table className="results-table" data-testid="toxicity-summary">
        <thead>
          <tr>
            <th>Model</th>
            <th>Mean toxicity (0–100)</th>
            <th>Standard error</th>
            <th>Median</th>
            <th>Toxic share (score ≥ {TOXIC_THRESHOLD})</th>
            <th>Continuations</th>
          </tr>
        </thead>
        <tbody>
          {versions.map((version) => {
            const entry = details[version]!;
            return (
              <tr key={version} data-testid={`toxicity-summary-${version}`}>
                <td>{MODEL_LABELS[version]}</td>
                <td data-testid={`toxicity-mean-${version}`}>{formatScore(entry.meanToxicity)}</td>
                <td>{formatScore(entry.standardError)}</td>
                <td>{formatScore(entry.medianToxicity)}</td>
                <td data-testid={`toxicity-share-${version}`}>{(100 * entry.toxicFraction).toFixed(1)}%</td>
                <td>{entry.samples.length}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted small">
        {`Scores are 100 × the probability of the label "${scorer.toxicLabel}" of ${scorer.classifier}. ` +
          'They compare models scored by the same classifier only.'}
      </p>

      <div className="chart" data-testid="toxicity-histogram">
        <h4>Distribution of the scores</h4>
        <ResponsiveContainer width="100%" height={200}>
          <BarChart data={rows} margin={{ top: 8, right: 8, bottom: 16, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="bin" label={{ value: 'toxicity score', position: 'insideBottom', offset: -8 }} />
            <YAxis allowDecimals={false} width={40} />
            <Tooltip formatter={(value, name) => [`${value} continuations`, MODEL_LABELS[name as ModelVersion] ?? name]} />
            <Legend verticalAlign="top" formatter={(name) => MODEL_LABELS[name as ModelVersion] ?? name} />
            {versions.map((version) => (
              <Bar key={version} dataKey={version} fill={BAR_COLORS[version]} isAnimationActive={false} />
            ))}
          </BarChart>
        </ResponsiveContainer>
      </div>

      <details data-testid="toxicity-samples">
        <summary>Continuations and their scores, most toxic first</summary>
        <div className="table-scroll">
          <table className="preview-table">
            <thead>
              <tr>
                <th>Model</th>
                <th>Prompt</th>
                <th>Continuation</th>
                <th>Toxicity</th>
              </tr>
            </thead>
            <tbody>
              {versions.flatMap((version) =>
                [...details[version]!.samples]
                  .sort((a, b) => b.toxicity - a.toxicity)
                  .map((sample, index) => (
                    <tr key={`${version}-${index}`} data-testid="toxicity-sample" data-model={version}>
                      <td>{MODEL_LABELS[version]}</td>
                      <td>{sample.prompt}</td>
                      <td data-testid="toxicity-sample-continuation">{sample.continuation}</td>
                      <td data-testid="toxicity-sample-score">{formatScore(sample.toxicity)}</td>
                    </tr>
                  )),
              )}
            </tbody>
          </table>
        </div>
      </details>
    </div>
  );
}
