// The comparison table of runs, its CSV and text forms, and the runs file format.

import { describe, expect, it } from 'vitest';
import {
  RUNS_STORAGE_KEY, compareRuns, comparisonCsv, comparisonText, loadStoredRuns, parseRuns, runsJson, storeRuns, upsertRun, type RunRecord,
} from '../../src/eval/compare.ts';
import type { Overhead } from '../../src/eval/overhead.ts';

const overhead = (flops: number, peakMiB: number): Overhead => ({
  flops, flopsPerToken: flops / 1000, trainingTokens: 1000, forwardTokens: 0, gpuSeconds: 12.5, peakMemoryBytes: peakMiB * 1024 * 1024, iterations: 40,
});

const runs: RunRecord[] = [
  { name: 'Original', perplexity: { WikiText2: 19.44, Lambada: 30.4 }, toxicity: 0.4553 },
  { name: 'DAPT', method: 'dapt', perplexity: { WikiText2: 26.95 }, toxicity: 0.2, overhead: overhead(12.32e12, 13175) },
  { name: 'IRepair, KL', method: 'irepair-kl', perplexity: { WikiText2: 22.35, Lambada: 30.93 }, toxicity: 0.0511, overhead: overhead(63.19e12, 17071) },
];

describe('compareRuns', () => {
  const table = compareRuns(runs);
  const row = (key: string) => table.rows.find((r) => r.key === key)!;

  it('has one column per run', () => {
    expect(table.columns).toEqual(['Original', 'DAPT', 'IRepair, KL']);
  });

  it('scales toxicity to 0-100 and marks the lowest', () => {
    expect(row('toxicity').values[0]).toBeCloseTo(45.53, 10);
    expect(row('toxicity').best).toBe(2);
  });

  it('has a perplexity row per benchmark', () => {
    expect(row('perplexity:WikiText2').label).toBe('PPL (WikiText2)');
    expect(row('perplexity:Lambada').values).toEqual([30.4, null, 30.93]);
    expect(row('perplexity:WikiText2').best).toBe(0);
  });

  it('reports overheads in the units of Table 2', () => {
    expect(row('tflops').values[1]).toBeCloseTo(12.32, 10);
    expect(row('tflops').values[0]).toBeNull();
    expect(row('peakMemoryMiB').values[2]).toBeCloseTo(17071, 10);
    expect(row('gflopsPerToken').values[1]).toBeCloseTo(12.32e12 / 1000 / 1e9, 10);
  });

  it('scales the planted-behaviour rate to percent', () => {
    const planted = compareRuns([{ name: 'Original', plantedRate: 0.625 }, { name: 'IRepair', method: 'irepair', plantedRate: 0.125 }]);
    const rate = planted.rows.find((r) => r.key === 'plantedRate')!;
    expect(rate.label).toBe('Planted behaviour (%)');
    expect(rate.values).toEqual([62.5, 12.5]);
    expect(rate.best).toBe(1);
  });

  it('lists method and settings above the metrics', () => {
    const withSettings = compareRuns([
      { name: 'Original', toxicity: 0.5 },
      { name: 'IRepair', method: 'irepair', settings: { learningRate: 0.0001, batchSize: 4, finishReason: 'completed' }, toxicity: 0.1 },
    ]);
    expect(withSettings.details).toEqual([
      { key: 'method', label: 'Method', values: [null, 'irepair'] },
      { key: 'settings', label: 'Settings', values: [null, 'learningRate 0.0001, batchSize 4, finishReason completed'] },
    ]);
    expect(table.details.map((detail) => detail.key)).toEqual(['method']);
  });

  it('leaves out metrics no run has', () => {
    const only = compareRuns([{ name: 'A', perplexity: { Wiki: 3 } }]);
    expect(only.rows.map((r) => r.key)).toEqual(['perplexity:Wiki']);
    expect(only.details).toEqual([]);
    expect(only.rows[0].best).toBe(-1);
  });
});

describe('comparisonCsv', () => {
  it('quotes names with commas and leaves missing values empty', () => {
    const lines = comparisonCsv(compareRuns(runs)).split('\r\n');
    expect(lines[0]).toBe('metric,Original,DAPT,"IRepair, KL"');
    expect(lines[1]).toBe('Method,,dapt,irepair-kl');
    expect(lines).toContain('PPL (Lambada),30.4,,30.93');
    expect(lines.at(-1)).toBe('');
  });
});

describe('comparisonText', () => {
  it('aligns the columns and stars the best value', () => {
    const [table, legend] = comparisonText(compareRuns(runs)).split('\n\n');
    const lines = table.split('\n');
    expect(lines[0].trim().split(/\s{2,}/)).toEqual(['Original', 'DAPT', 'IRepair, KL']);
    expect(lines.find((line) => line.startsWith('PPL (WikiText2)'))).toMatch(/19\.44\*\s+26\.95\s+22\.35$/);
    expect(new Set(lines.map((line) => line.length)).size).toBe(1);
    expect(legend).toBe('* lowest value of the row (every metric here is better lower)');
  });

  it('lists settings below the table', () => {
    const withSettings: RunRecord[] = [
      { name: 'Original', perplexity: { WikiText2: 19.44 } },
      { name: 'IRepair', method: 'irepair', settings: { learningRate: 1e-4, batchSize: 4, finishReason: 'completed' }, perplexity: { WikiText2: 22.35 } },
    ];
    const text = comparisonText(compareRuns(withSettings));
    const lines = text.split('\n');
    expect(lines.some((line) => line.startsWith('Settings  '))).toBe(false);
    expect(lines.find((line) => line.startsWith('Method'))).toMatch(/-\s+irepair$/);
    expect(text.endsWith('\nSettings:\n  Original: -\n  IRepair: learningRate 0.0001, batchSize 4, finishReason completed')).toBe(true);
    const tableWidth = lines[0].length;
    expect(tableWidth).toBeLessThan(40);
  });
});

describe('runs file', () => {
  it('round-trips through JSON', () => {
    expect(parseRuns(runsJson(runs), 'runs.json')).toEqual(runs);
    const detailed: RunRecord[] = [{ name: 'A', method: 'dpo', settings: { beta: 0.1, normalData: null, dropout: true }, plantedRate: 0.25 }];
    expect(parseRuns(runsJson(detailed), 'runs.json')).toEqual(detailed);
  });

  it('names the file and field at fault', () => {
    expect(() => parseRuns('{"runs": [{"name": "A", "toxicity": "high"}]}', 'runs.json')).toThrow('runs.json: runs[0]: field "toxicity" must be a finite number, found "high".');
    expect(() => parseRuns('{"runs": [{}]}', 'runs.json')).toThrow(/runs\[0\]: field "name"/);
    expect(() => parseRuns('not json', 'runs.json')).toThrow(/runs.json: invalid JSON/);
    expect(() => parseRuns('{"other": 1}', 'runs.json')).toThrow(/"runs" array/);
    expect(() => parseRuns('{"runs": [{"name": "A", "overhead": {"flops": 1}}]}', 'r.json')).toThrow(/overhead field "flopsPerToken"/);
    expect(() => parseRuns('{"runs": [{"name": "A", "settings": {"lr": [1]}}]}', 'r.json')).toThrow('r.json: runs[0]: field "settings": setting "lr" must be a string, a finite number, a boolean or null, found [1].');
    expect(() => parseRuns('{"runs": [{"name": "A", "plantedRate": null}]}', 'r.json')).toThrow(/field "plantedRate" must be a finite number/);
  });

  it('merges perplexities of the same run', () => {
    const first = upsertRun([], { name: 'IRepair', perplexity: { WikiText2: 20.93 } });
    const second = upsertRun(first, { name: 'IRepair', method: 'irepair', perplexity: { Lambada: 32.51 } });
    expect(second).toEqual([{ name: 'IRepair', method: 'irepair', perplexity: { WikiText2: 20.93, Lambada: 32.51 } }]);
    expect(first[0].perplexity).toEqual({ WikiText2: 20.93 });
  });

  it('keeps runs in browser storage', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (key: string) => store.get(key) ?? null, setItem: (key: string, value: string) => void store.set(key, value) };
    expect(loadStoredRuns(storage)).toEqual([]);
    storeRuns(storage, runs);
    expect(store.has(RUNS_STORAGE_KEY)).toBe(true);
    expect(loadStoredRuns(storage)).toEqual(runs);
    store.set(RUNS_STORAGE_KEY, '{');
    expect(() => loadStoredRuns(storage)).toThrow(/clear it to start over/);
  });
});
