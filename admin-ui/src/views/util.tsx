import { useEffect, useRef } from "react";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

// Calls `fn` now and every `ms` while the component is mounted (never two at once).
export function usePoll(fn: () => Promise<void>, ms: number, deps: unknown[]) {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    let stop = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        await latest.current();
      } finally {
        if (!stop) timer = window.setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stop = true;
      window.clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

export function fmtRate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(n < 10 ? 1 : 0);
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n.toFixed(0)} B`;
}

export function fmtTime(t?: Timestamp): string {
  if (!t) return "";
  return new Date(Number(t.seconds) * 1000 + t.nanos / 1e6).toLocaleTimeString();
}

export function fmtDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s}s`;
}

// A line chart in plain SVG: no chart library, nothing fetched from elsewhere.
export function LineChart(props: { title: string; series: { label: string; values: number[] }[];
                                   format: (n: number) => string }) {
  const w = 320, h = 90;
  const all = props.series.flatMap((s) => s.values);
  const max = Math.max(1, ...all);
  const colors = ["#2563eb", "#16a34a", "#d97706"];
  const n = Math.max(2, ...props.series.map((s) => s.values.length));
  return (
    <figure className="chart">
      <figcaption>
        {props.title}
        {props.series.map((s, i) => (
          <span key={s.label} className="legend" style={{ color: colors[i % 3] }}>
            {s.label} {props.format(s.values[s.values.length - 1] ?? 0)}
          </span>
        ))}
      </figcaption>
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={props.title} preserveAspectRatio="none">
        <line x1="0" y1={h - 1} x2={w} y2={h - 1} stroke="#ccc" />
        {props.series.map((s, i) => (
          <polyline key={s.label} fill="none" stroke={colors[i % 3]} strokeWidth="2"
            points={s.values.map((v, j) => `${(j / (n - 1)) * w},${h - 2 - (v / max) * (h - 6)}`)
              .join(" ")} />
        ))}
      </svg>
    </figure>
  );
}
