/** A uPlot line chart that follows its data (created once, updated with setData, resized with its box). */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  color: string;
  /** Plot points only (a sparse series such as validation loss). */
  points?: boolean;
}

export interface ChartProps {
  /** [x, y1, y2, …]; y values may be null where a series has no point. */
  data: (number | null)[][];
  series: Series[];
  xLabel: string;
  height?: number;
  testId: string;
}

export function Chart({ data, series, xLabel, height = 220, testId }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: false } },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { label: xLabel, stroke: '#9aa4b2', grid: { stroke: '#263041' }, ticks: { stroke: '#263041' } },
        { stroke: '#9aa4b2', grid: { stroke: '#263041' }, ticks: { stroke: '#263041' } },
      ],
      series: [
        { label: xLabel },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.points === true ? 0 : 1.5,
          spanGaps: true,
          points: s.points === true ? { show: true, size: 7, stroke: s.color, fill: s.color } : { show: false },
        })),
      ],
    };
    plot.current = new uPlot(opts, data as uPlot.AlignedData, el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // created once; data flows in through the effect below
  }, []);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  return <div class="chart" ref={box} data-testid={testId} data-points={data[0]?.length ?? 0} />;
}
