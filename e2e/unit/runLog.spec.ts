// Validation of run.json files from the CLI.

import { expect, test } from '@playwright/test';
import { RunLogError, parseRunLog } from '../../src/ui/runLog.ts';

const GOOD_STEP = { step: 1, sensitivities: [0.5, 1.5, 0.25], selectedBlock: 1, repairLoss: 2.5, klLoss: 0.1, lr: 2e-5 };

function parse(value: unknown): ReturnType<typeof parseRunLog> {
  return parseRunLog(JSON.stringify(value), 'run.json');
}

test('run log with sensitivities parses', () => {
  const log = parse({ method: 'irepair-kl', config: {}, steps: [GOOD_STEP, { ...GOOD_STEP, step: 2, klLoss: null }] });
  expect(log.method).toBe('irepair-kl');
  expect(log.numBlocks).toBe(3);
  expect(log.steps).toHaveLength(2);
  expect(log.steps[0]).toEqual(GOOD_STEP);
  expect(log.steps[1].klLoss).toBeUndefined();
});

test('run log reads validation losses', () => {
  const validation = [{ step: 1, loss: 2.25 }, { step: 2, loss: 2 }];
  expect(parse({ method: 'irepair', steps: [GOOD_STEP], validation }).validation).toEqual(validation);
  expect(parse({ method: 'irepair', steps: [GOOD_STEP] }).validation).toEqual([]);
});

test('baseline run log has no blocks', () => {
  const log = parse({ method: 'dapt', steps: [{ step: 1, repairLoss: 3, lr: 1e-6 }] });
  expect(log.numBlocks).toBe(0);
  expect(log.steps[0].sensitivities).toEqual([]);
  expect(log.steps[0].selectedBlock).toBeUndefined();
});

const BAD_LOGS: [string, unknown, string][] = [
  ['top level array', [], 'run.json: the top level must be an object with method and steps'],
  ['unknown method', { method: 'sgd', steps: [] }, 'run.json: method must be one of irepair, irepair-kl'],
  ['method missing', { steps: [] }, 'run.json: missing field method; it must be one of irepair, irepair-kl'],
  ['steps missing', { method: 'irepair' }, 'run.json: missing field steps; it must be an array.'],
  ['fractional step', { method: 'irepair', steps: [{ ...GOOD_STEP, step: 1.5 }] }, 'run.json: steps[0].step must be a non-negative integer'],
  [
    'steps out of order',
    { method: 'irepair', steps: [{ ...GOOD_STEP, step: 2 }, { ...GOOD_STEP, step: 2 }] },
    'run.json: steps[1].step must be greater than the previous step 2',
  ],
  [
    'negative sensitivity',
    { method: 'irepair', steps: [{ ...GOOD_STEP, sensitivities: [0.5, -1, 0.25] }] },
    'run.json: steps[0].sensitivities[1] must be a non-negative number (found -1)',
  ],
  [
    'block count changes',
    { method: 'irepair', steps: [GOOD_STEP, { ...GOOD_STEP, step: 2, sensitivities: [1, 2] }] },
    'run.json: steps[1].sensitivities must be 3 values like the steps before it',
  ],
  [
    'selected block out of range',
    { method: 'irepair', steps: [{ ...GOOD_STEP, selectedBlock: 3 }] },
    'run.json: steps[0].selectedBlock must be an integer block index below 3 (found 3)',
  ],
  [
    'repair loss missing',
    { method: 'irepair', steps: [{ ...GOOD_STEP, repairLoss: undefined }] },
    'run.json: missing field steps[0].repairLoss; it must be a number.',
  ],
  ['validation not array', { method: 'irepair', steps: [], validation: {} }, 'run.json: validation must be an array of { step, loss } (found {})'],
  [
    'validation loss missing',
    { method: 'irepair', steps: [], validation: [{ step: 5, loss: 1 }, { step: 10 }] },
    'run.json: missing field validation[1].loss; it must be a number.',
  ],
  [
    'validation out of order',
    { method: 'irepair', steps: [], validation: [{ step: 10, loss: 1 }, { step: 5, loss: 1 }] },
    'run.json: validation[1].step must be greater than the previous step 10',
  ],
  ['lr as text', { method: 'irepair', steps: [{ ...GOOD_STEP, lr: '2e-5' }] }, 'run.json: steps[0].lr must be a number (found "2e-5")'],
];

for (const [name, value, message] of BAD_LOGS) {
  test(`run log rejects ${name}`, () => {
    expect(() => parse(value)).toThrow(RunLogError);
    expect(() => parse(value)).toThrow(message);
  });
}

test('run log rejects invalid JSON', () => {
  expect(() => parseRunLog('{"method": ', 'logs/run.json')).toThrow(/^logs\/run\.json is not valid JSON: /);
});
