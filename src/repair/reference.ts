// The reference model π_ref of the KL term: the model before the repair. It shares every
// parameter the repair has not changed with the model under repair, and it keeps an original
// copy only of the parameters about to be updated. IRepair's reference therefore costs one block
// per block it has selected instead of a second model.

import type { GptEngine } from '../engine/gpt.ts';
import { allocateTensor, destroyTensor, type Tensor } from '../engine/parameters.ts';
import type { ParameterName } from '../model/types.ts';

export class ReferenceModel {
  private readonly engine: GptEngine;
  private readonly originals = new Map<ParameterName, Tensor>();

  constructor(engine: GptEngine) {
    this.engine = engine;
  }

  /**
   * Records copies of the current values of those `names` that have no copy yet. Call it before
   * the first update of a parameter, while its values are still the original ones.
   */
  keepOriginals(names: Iterable<ParameterName>): void {
    const { gpu } = this.engine;
    for (const name of names) {
      if (this.originals.has(name)) continue;
      const current = this.engine.param(name);
      const copy = allocateTensor(gpu, `reference.${name}`, current.shape, 'weights');
      current.chunks.forEach((chunk, i) => gpu.copy(chunk.buffer, 0, copy.chunks[i].buffer, 0, chunk.buffer.bytes));
      this.originals.set(name, copy);
    }
  }

  /** The substitutions that turn the engine into the reference model (see ForwardOptions). */
  get parameters(): ReadonlyMap<ParameterName, Tensor> {
    return this.originals;
  }

  destroy(): void {
    for (const tensor of this.originals.values()) destroyTensor(this.engine.gpu, tensor);
    this.originals.clear();
  }
}
