// Blocks x steps heatmap of the sensitivities (the L2 norm of each block's gradient on the bad
// continuations), with the block the run selected marked in each column.
//
// The SVG's user space is one unit per step and per block (viewBox `0 0 steps blocks`), stretched
// to the panel, so a column never re-renders when the panel resizes or more steps arrive. With
// per-step normalisation a column depends only on its own values and is drawn once. With global
// normalisation every column is redrawn when the overall range changes.
// NOTE: a redraw of 1000 steps x 48 blocks took about 0.5 s in headless Chromium on two CPU
// cores, so the global view can lag on long live runs of large models. The per-step view stays cheap.

import { memo, useLayoutEffect, useMemo, useRef, useState, type MouseEvent } from 'react';
import { LEGEND_GRADIENT, colorAt, normalise, rangeOf, type Normalisation, type Range } from '../colorScale.ts';
import { useWorkbench } from '../context.tsx';
import { formatValue } from '../format.ts';
import { useElementWidth } from '../useElementWidth.ts';
import { isSliceMethod, type StepRecord } from '../../worker/protocol.ts';

/** Columns narrower than this make the plot scroll sideways instead of shrinking further. */
const MIN_CELL_WIDTH_PX = 3;
const MAX_PLOT_HEIGHT_PX = 300;
const MIN_CELL_HEIGHT_PX = 5;
const MAX_CELL_HEIGHT_PX = 22;
/** Width of the block labels left of the plot, the same as .heatmap-yaxis in styles.css. */
const Y_AXIS_WIDTH_PX = 32;

interface ColumnProps {
  record: StepRecord;
  index: number;
  /** The global range, or null to scale the column to its own values. */
  globalRange: Range | null;
}

const HeatmapColumn = memo(function HeatmapColumn({ record, index, globalRange }: ColumnProps) {
  const range = globalRange ?? rangeOf(record.sensitivities);
  return (
    <g>
      {record.sensitivities.map((value, block) => (
        <rect
          key={block}
          data-testid="heatmap-cell"
          data-block={block}
          data-step={record.step}
          data-value={value}
          x={index}
          y={block}
          width={1}
          height={1}
          fill={colorAt(normalise(value, range))}
        />
      ))}
      {record.selectedBlock !== undefined && (
        <rect
          className="selected-marker"
          data-testid="selected-block"
          data-block={record.selectedBlock}
          data-step={record.step}
          x={index + 0.08}
          y={record.selectedBlock + 0.08}
          width={0.84}
          height={0.84}
          vectorEffect="non-scaling-stroke"
        />
      )}
    </g>
  );
});

interface HoverInfo {
  block: number;
  step: number;
  value: number;
  selected: boolean;
  left: number;
  top: number;
}

/** Picks at most `count` evenly spaced indices out of `length`, always including the last. */
function tickIndices(length: number, count: number): number[] {
  if (length <= 0) return [];
  const stride = Math.max(1, Math.ceil(length / count));
  const ticks: number[] = [];
  for (let index = 0; index < length; index += stride) ticks.push(index);
  if (ticks[ticks.length - 1] !== length - 1) {
    // Drop a tick that would crowd the last one.
    if (length - 1 - ticks[ticks.length - 1] < stride / 2) ticks.pop();
    ticks.push(length - 1);
  }
  return ticks;
}

function Legend({ normalisation, range }: { normalisation: Normalisation; range: Range | null }) {
  const low = normalisation === 'step' ? 'least sensitive block in the step' : formatValue(range?.min);
  const high = normalisation === 'step' ? 'most sensitive' : formatValue(range?.max);
  return (
    <div className="heatmap-legend" data-testid="heatmap-legend">
      <span className="muted small">{low}</span>
      <span className="legend-bar" style={{ background: LEGEND_GRADIENT }} />
      <span className="muted small">{high}</span>
      <span className="legend-marker" /> <span className="muted small">selected block</span>
    </div>
  );
}

export function SensitivityHeatmap() {
  const steps = useWorkbench((state) => state.run.steps);
  const numBlocks = useWorkbench((state) => state.run.numBlocks);
  const method = useWorkbench((state) => state.run.method);
  const [normalisation, setNormalisation] = useState<Normalisation>('step');
  const [hover, setHover] = useState<HoverInfo | null>(null);
  const frameRef = useRef<HTMLDivElement | null>(null);
  const panelRef = useRef<HTMLDivElement | null>(null);
  const width = Math.max(0, useElementWidth(panelRef) - Y_AXIS_WIDTH_PX);
  // While the view shows the latest step, new steps keep it scrolled to the end.
  const followLatest = useRef(true);

  // Baseline steps carry no sensitivities, and a malformed step must not shift the rows.
  const columns = useMemo(
    () => steps.filter((record) => record.sensitivities.length === numBlocks && numBlocks > 0),
    [steps, numBlocks],
  );
  const globalRange = useMemo(
    () => (columns.length > 0 ? rangeOf(columns.flatMap((record) => record.sensitivities)) : null),
    [columns],
  );

  const cellHeight = Math.max(MIN_CELL_HEIGHT_PX, Math.min(MAX_CELL_HEIGHT_PX, Math.floor(MAX_PLOT_HEIGHT_PX / Math.max(1, numBlocks))));
  const plotHeight = cellHeight * numBlocks;
  const plotWidth = Math.max(width, columns.length * MIN_CELL_WIDTH_PX);
  const blockTicks = tickIndices(numBlocks, Math.max(2, Math.floor(plotHeight / 16)));
  const stepTicks = tickIndices(columns.length, Math.max(2, Math.floor(plotWidth / 70)));

  useLayoutEffect(() => {
    const frame = frameRef.current;
    if (frame && followLatest.current) frame.scrollLeft = frame.scrollWidth;
  }, [columns.length]);

  const onScroll = () => {
    const frame = frameRef.current;
    if (frame) followLatest.current = frame.scrollLeft + frame.clientWidth >= frame.scrollWidth - 4;
  };

  const onMouseMove = (event: MouseEvent<SVGSVGElement>) => {
    const target = event.target as SVGElement;
    const frame = frameRef.current;
    if (target.dataset.testid !== 'heatmap-cell' || !frame) {
      setHover(null);
      return;
    }
    const block = Number(target.dataset.block);
    const step = Number(target.dataset.step);
    const record = columns.find((candidate) => candidate.step === step);
    const bounds = frame.getBoundingClientRect();
    setHover({
      block,
      step,
      value: Number(target.dataset.value),
      selected: record?.selectedBlock === block,
      left: event.clientX - bounds.left + frame.scrollLeft + 12,
      top: event.clientY - bounds.top + 12,
    });
  };

  let body;
  if (columns.length === 0) {
    const baseline = method !== null && !isSliceMethod(method) && steps.length > 0;
    body = (
      <p className="muted placeholder">
        {baseline
          ? `${method} updates every block, so its steps carry no per-block sensitivities.`
          : 'Per-block sensitivities appear here at every step of an IRepair run, or open a run.json.'}
      </p>
    );
  } else {
    body = (
      <div className="heatmap-body">
        <div className="heatmap-yaxis" style={{ height: plotHeight }}>
          {blockTicks.map((block) => (
            <span key={block} style={{ top: (block + 0.5) * cellHeight }}>
              {block}
            </span>
          ))}
        </div>
        <div className="heatmap-frame" ref={frameRef} onScroll={onScroll} onMouseLeave={() => setHover(null)}>
          <svg
            className="heatmap-svg"
            role="img"
            aria-label={`Sensitivity of ${numBlocks} blocks over ${columns.length} steps`}
            width={plotWidth}
            height={plotHeight}
            viewBox={`0 0 ${columns.length} ${numBlocks}`}
            preserveAspectRatio="none"
            shapeRendering="crispEdges"
            onMouseMove={onMouseMove}
          >
            {columns.map((record, index) => (
              <HeatmapColumn
                key={record.step}
                record={record}
                index={index}
                globalRange={normalisation === 'global' ? globalRange : null}
              />
            ))}
          </svg>
          <div className="heatmap-xaxis" style={{ width: plotWidth }}>
            {stepTicks.map((index) => (
              <span key={index} style={{ left: `${((index + 0.5) / columns.length) * 100}%` }}>
                {columns[index].step}
              </span>
            ))}
          </div>
          {hover && (
            <div className="heatmap-tooltip" data-testid="heatmap-tooltip" style={{ left: hover.left, top: hover.top }}>
              Step {hover.step}, block {hover.block}: sensitivity {formatValue(hover.value)}
              {hover.selected ? ' (selected)' : ''}
            </div>
          )}
        </div>
      </div>
    );
  }

  return (
    <div className="heatmap" data-testid="sensitivity-heatmap" ref={panelRef}>
      <div className="chart-header">
        <h3>Sensitivity per block and step</h3>
        <div className="segmented" role="radiogroup" aria-label="Colour normalisation">
          {(['step', 'global'] as const).map((mode) => (
            <label key={mode}>
              <input
                type="radio"
                name="heatmap-normalisation"
                data-testid={`normalise-${mode}`}
                checked={normalisation === mode}
                onChange={() => setNormalisation(mode)}
              />
              {mode === 'step' ? 'Per step' : 'Global'}
            </label>
          ))}
        </div>
      </div>
      {body}
      {columns.length > 0 && <Legend normalisation={normalisation} range={globalRange} />}
      <p className="muted small">Rows: blocks (block 0 nearest the input); columns: steps.</p>
    </div>
  );
}
