// Buffers of one forward pass kept for the backward pass (llm.c's activation layout), and the
// scratch the backward pass needs. B is the batch size, T the sequence length, C the width,
// I the MLP width, NH the number of heads, V the vocabulary.

import type { Gpu, GpuBuffer } from '../gpu/device.ts';
import type { ModelConfig } from '../model/types.ts';

export interface LayerActivations {
  /** Input of the block (residual stream) [B*T, C]. */
  residual: GpuBuffer;
  ln1: GpuBuffer; // [B*T, C]
  ln1Mean: GpuBuffer; // [B*T]
  ln1Rstd: GpuBuffer; // [B*T]
  qkv: GpuBuffer; // [B*T, 3C]
  att: GpuBuffer; // [B, NH, T, T] softmax probabilities
  attOut: GpuBuffer; // [B*T, C] attention output before its projection
  /** Residual stream after the attention sublayer [B*T, C]. */
  residualAfterAttention: GpuBuffer;
  ln2: GpuBuffer; // [B*T, C]
  ln2Mean: GpuBuffer; // [B*T]
  ln2Rstd: GpuBuffer; // [B*T]
  fc: GpuBuffer; // [B*T, I] before GELU
  fcGelu: GpuBuffer; // [B*T, I]
}

export interface Activations {
  B: number;
  T: number;
  /** Whether every layer has its own buffers (needed for a backward pass). */
  forBackward: boolean;
  layers: LayerActivations[];
  /** Output of the last block [B*T, C]. */
  residualOut: GpuBuffer;
  lnf: GpuBuffer; // [B*T, C]
  lnfMean: GpuBuffer;
  lnfRstd: GpuBuffer;
  logits: GpuBuffer; // [B*T, V], overwritten by its gradient in the backward pass
  projection: GpuBuffer; // [B*T, C] scratch for sublayer outputs before the residual add
  tokens: GpuBuffer; // [B*T] i32
  targets: GpuBuffer; // [B*T] i32
  lossWeights: GpuBuffer; // [B*T]
  losses: GpuBuffer; // [B*T]
  lse: GpuBuffer; // [B*T] (crossentropy) or [B*T, 3] (KL statistics)
  all: GpuBuffer[];
}

/** Bytes of activations a forward pass keeps for B x T tokens. */
export function activationBytes(config: ModelConfig, B: number, T: number, forBackward: boolean): number {
  const C = config.hiddenSize;
  const I = config.innerSize;
  const BT = B * T;
  const perLayer = 4 * (BT * C * 5 + BT * 4 + BT * 3 * C + B * config.numHeads * T * T + BT * I * 2);
  const layers = forBackward ? config.numLayers : 1;
  const shared = 4 * (BT * C * 3 + BT * 2 + BT * config.vocabSize + BT * 7);
  return perLayer * layers + shared;
}

export function allocateActivations(gpu: Gpu, config: ModelConfig, B: number, T: number, forBackward: boolean): Activations {
  const C = config.hiddenSize;
  const I = config.innerSize;
  const BT = B * T;
  const all: GpuBuffer[] = [];
  const make = (label: string, floats: number): GpuBuffer => {
    const buffer = gpu.createBuffer(label, floats * 4, 'activations');
    all.push(buffer);
    return buffer;
  };

  const makeLayer = (l: number): LayerActivations => ({
    residual: make(`h.${l}.residual`, BT * C),
    ln1: make(`h.${l}.ln1`, BT * C),
    ln1Mean: make(`h.${l}.ln1Mean`, BT),
    ln1Rstd: make(`h.${l}.ln1Rstd`, BT),
    qkv: make(`h.${l}.qkv`, BT * 3 * C),
    att: make(`h.${l}.att`, B * config.numHeads * T * T),
    attOut: make(`h.${l}.attOut`, BT * C),
    residualAfterAttention: make(`h.${l}.residualAfterAttention`, BT * C),
    ln2: make(`h.${l}.ln2`, BT * C),
    ln2Mean: make(`h.${l}.ln2Mean`, BT),
    ln2Rstd: make(`h.${l}.ln2Rstd`, BT),
    fc: make(`h.${l}.fc`, BT * I),
    fcGelu: make(`h.${l}.fcGelu`, BT * I),
  });

  // A forward-only pass reuses one layer's buffers for every layer; the residual stream then
  // alternates between two buffers because a block reads its input while writing its output.
  let layers: LayerActivations[];
  if (forBackward) {
    layers = Array.from({ length: config.numLayers }, (_, l) => makeLayer(l));
  } else {
    const shared = makeLayer(0);
    const other = make('residual.alternate', BT * C);
    layers = Array.from({ length: config.numLayers }, (_, l) => ({ ...shared, residual: l % 2 === 0 ? shared.residual : other }));
  }
  const residualOut = forBackward || config.numLayers % 2 === 1 ? make('residual.out', BT * C) : layers[0].residual;

  return {
    B, T, forBackward, layers, residualOut,
    lnf: make('lnf', BT * C),
    lnfMean: make('lnfMean', BT),
    lnfRstd: make('lnfRstd', BT),
    logits: make('logits', BT * config.vocabSize),
    projection: make('projection', BT * C),
    tokens: make('tokens', BT),
    targets: make('targets', BT),
    lossWeights: make('lossWeights', BT),
    losses: make('losses', BT),
    lse: make('lse', BT * 3),
    all,
  };
}

export function freeActivations(gpu: Gpu, activations: Activations): void {
  for (const buffer of activations.all) gpu.destroyBuffer(buffer);
}

/** Buffers the backward pass writes besides parameter gradients. */
export interface BackwardScratch {
  dResidual: GpuBuffer; // [B*T, C] gradient of the residual stream
  dLn: GpuBuffer; // [B*T, C] gradient of a LayerNorm output
  dAttOut: GpuBuffer; // [B*T, C]
  dQkv: GpuBuffer; // [B*T, 3C]
  dAtt: GpuBuffer; // [B, NH, T, T]
  dFc: GpuBuffer; // [B*T, I] (used for the gradients before and after GELU in turn)
  dFcGelu: GpuBuffer; // [B*T, I]
  all: GpuBuffer[];
}

export function scratchBytes(config: ModelConfig, B: number, T: number): number {
  const BT = B * T;
  const C = config.hiddenSize;
  return 4 * (BT * C * 3 + BT * 3 * C + B * config.numHeads * T * T + BT * config.innerSize * 2);
}

export function allocateScratch(gpu: Gpu, config: ModelConfig, B: number, T: number): BackwardScratch {
  const BT = B * T;
  const C = config.hiddenSize;
  const all: GpuBuffer[] = [];
  const make = (label: string, floats: number): GpuBuffer => {
    const buffer = gpu.createBuffer(label, floats * 4, 'scratch');
    all.push(buffer);
    return buffer;
  };
  return {
    dResidual: make('dResidual', BT * C),
    dLn: make('dLn', BT * C),
    dAttOut: make('dAttOut', BT * C),
    dQkv: make('dQkv', BT * 3 * C),
    dAtt: make('dAtt', B * config.numHeads * T * T),
    dFc: make('dFc', BT * config.innerSize),
    dFcGelu: make('dFcGelu', BT * config.innerSize),
    all,
  };
}
