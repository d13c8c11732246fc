// Colour scale and normalisation for the sensitivity heatmap.

/** Viridis sampled at ten evenly spaced points, a perceptually uniform map that stays readable in greyscale. */
const VIRIDIS_STOPS = [
  '#440154', '#482878', '#3e4989', '#31688e', '#26828e',
  '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725',
];

function parseHex(hex: string): [number, number, number] {
  return [1, 3, 5].map((offset) => parseInt(hex.slice(offset, offset + 2), 16)) as [number, number, number];
}

const STOP_RGB = VIRIDIS_STOPS.map(parseHex);
const TABLE_SIZE = 256;

// Cells look colours up in a table so that thousands of cells do not interpolate each render.
const COLOR_TABLE: string[] = Array.from({ length: TABLE_SIZE }, (_, index) => {
  const position = (index / (TABLE_SIZE - 1)) * (STOP_RGB.length - 1);
  const lower = Math.min(Math.floor(position), STOP_RGB.length - 2);
  const fraction = position - lower;
  const rgb = STOP_RGB[lower].map((channel, c) => Math.round(channel + (STOP_RGB[lower + 1][c] - channel) * fraction));
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
});

/** Returns the colour of a value in [0, 1], clamping values outside. */
export function colorAt(t: number): string {
  const clamped = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  return COLOR_TABLE[Math.round(clamped * (TABLE_SIZE - 1))];
}

/** CSS gradient through the same stops, for the legend. */
export const LEGEND_GRADIENT = `linear-gradient(to right, ${VIRIDIS_STOPS.join(', ')})`;

export type Normalisation = 'step' | 'global';

export interface Range {
  min: number;
  max: number;
}

export function rangeOf(values: readonly number[]): Range {
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { min, max };
}

/** Maps a value into [0, 1] within a range. A range of one value maps everything to 0.5. */
export function normalise(value: number, range: Range): number {
  const span = range.max - range.min;
  if (!(span > 0)) return 0.5;
  return (value - range.min) / span;
}
