// Repair NLL, KL term and validation loss over the steps.

import { useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { useWorkbench } from '../context.tsx';
import { formatValue } from '../format.ts';
import { lossAxisTicks, lossPoints } from '../chartData.ts';

export function LossChart() {
  const steps = useWorkbench((state) => state.run.steps);
  const validation = useWorkbench((state) => state.run.validation);
  const points = useMemo(() => lossPoints(steps, validation), [steps, validation]);
  const yTicks = useMemo(() => lossAxisTicks(points), [points]);
  const hasKl = steps.some((record) => record.klLoss !== undefined);

  return (
    <div className="chart" data-testid="loss-chart">
      <h3>Losses</h3>
      {points.length === 0 ? (
        <p className="muted placeholder">Repair NLL, KL and validation loss appear here as the run proceeds.</p>
      ) : (
        <ResponsiveContainer width="100%" height={220}>
          <LineChart data={points} margin={{ top: 8, right: 8, bottom: 16, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} label={{ value: 'step', position: 'insideBottom', offset: -8 }} />
            <YAxis width={52} domain={[0, yTicks[yTicks.length - 1]]} ticks={yTicks} tickFormatter={(value: number) => String(Number(value.toPrecision(3)))} />
            <Tooltip formatter={(value) => formatValue(Number(value))} labelFormatter={(step) => `Step ${step}`} />
            <Legend verticalAlign="top" height={24} />
            <Line dataKey="repairLoss" name="repair NLL" stroke="#31688e" dot={false} isAnimationActive={false} />
            {hasKl && <Line dataKey="klLoss" name="KL" stroke="#35b779" dot={false} isAnimationActive={false} />}
            {validation.length > 0 && (
              <Line dataKey="validationLoss" name="validation" stroke="#d1495b" connectNulls isAnimationActive={false} />
            )}
          </LineChart>
        </ResponsiveContainer>
      )}
    </div>
  );
}
