// Loading datasets into the worker session without a model: a rejected file keeps the dataset
// that the role had before, and the error names the file that is still in use.

import { describe, expect, it, vi } from 'vitest';
import { WorkerSession } from '../../src/worker/session.ts';
import type { WorkerEvent } from '../../src/worker/protocol.ts';

// The classifier module imports the onnxruntime WASM file through a Vite `?url` import, which
// only the app build resolves. These tests never load a classifier, so an empty module replaces it.
vi.mock('../../src/worker/classifier.ts', () => ({ loadClassifier: vi.fn() }));

const GOOD_REPAIR = [
  { prompt_text: 'The cat', pert_gen_text: ' is bad', unpert_gen_text: ' is good' },
  { prompt_text: 'A dog', pert_gen_text: ' bites', unpert_gen_text: ' sleeps' },
]
  .map((row) => JSON.stringify(row))
  .join('\n');

function sessionWithEvents(): { session: WorkerSession; events: WorkerEvent[] } {
  const events: WorkerEvent[] = [];
  return { session: new WorkerSession((event) => events.push(event)), events };
}

describe('WorkerSession.loadDataset', () => {
  it('keeps the previous repair data after a rejected file', async () => {
    const { session, events } = sessionWithEvents();
    await session.loadDataset(new File([GOOD_REPAIR], 'good.jsonl'), 'repair');
    expect(events.map((event) => event.kind)).toEqual(['datasetLoaded']);

    const rejected = session.loadDataset(new File(['{"prompt_text": "x",\n'], 'broken.jsonl'), 'repair');
    await expect(rejected).rejects.toThrow(/broken\.jsonl/);
    await expect(rejected).rejects.toThrow(/The previous repair data, good\.jsonl, is still in use\.$/);
    expect(events).toHaveLength(1);

    // Start still finds the good file: it fails on the missing model, not on missing repair data.
    await expect(session.start({ kind: 'start', method: 'irepair', options: {} as never })).rejects.toThrow(/Load a model before starting a run/);
  });

  it('reports a rejected first file without a previous one', async () => {
    const { session } = sessionWithEvents();
    const rejected = session.loadDataset(new File(['not json'], 'broken.jsonl'), 'repair');
    await expect(rejected).rejects.toThrow(/broken\.jsonl/);
    await expect(rejected).rejects.not.toThrow(/still in use/);
  });
});
