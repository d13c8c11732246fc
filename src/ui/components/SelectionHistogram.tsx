// How often the run selected each block.

import { useMemo } from 'react';
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { selectionCounts } from '../chartData.ts';
import { useWorkbench } from '../context.tsx';

export function SelectionHistogram() {
  const steps = useWorkbench((state) => state.run.steps);
  const numBlocks = useWorkbench((state) => state.run.numBlocks);

  const counts = useMemo(() => selectionCounts(steps, numBlocks), [steps, numBlocks]);
  const total = counts.reduce((sum, entry) => sum + entry.count, 0);

  return (
    <div className="chart" data-testid="selection-histogram">
      <h3>Block selections</h3>
      {total === 0 ? (
        <p className="muted placeholder">Counts of the block selected at each step appear here.</p>
      ) : (
        <ResponsiveContainer width="100%" height={220}>
          <BarChart data={counts} margin={{ top: 8, right: 8, bottom: 16, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="block" label={{ value: 'block', position: 'insideBottom', offset: -8 }} />
            <YAxis allowDecimals={false} width={40} />
            <Tooltip formatter={(value) => [`${value} of ${total} steps`, 'selected']} labelFormatter={(block) => `Block ${block}`} />
            <Bar dataKey="count" fill="#3e4989" isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      )}
    </div>
  );
}
