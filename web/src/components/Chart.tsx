// Bitrate and latency over the last minutes, as two lines on one small SVG chart.

import { polyline, type Sample } from '../history';

const W = 320;
const H = 90;

export function Chart({ samples, label }: { samples: Sample[]; label: string }) {
  const bitrates = samples.map((s) => (s.bitrate_kbps === null ? null : s.bitrate_kbps / 1000));
  const latencies = samples.map((s) => s.latency_ms);
  const maxMbps = Math.max(1, ...bitrates.filter((v): v is number => v !== null));
  const maxMs = Math.max(1, ...latencies.filter((v): v is number => v !== null));
  const have = samples.some((s) => s.bitrate_kbps !== null || s.latency_ms !== null);
  const last = samples[samples.length - 1];
  const summary = last
    ? `${label}: bitrate ${last.bitrate_kbps === null ? 'unknown' : (last.bitrate_kbps / 1000).toFixed(1) + ' Mbit/s'}, latency ${last.latency_ms === null ? 'unknown' : last.latency_ms.toFixed(1) + ' ms'}`
    : label;
  return (
    <figure className="chart">
      {have ? (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={summary} preserveAspectRatio="none">
          <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} className="axis" />
          <polyline points={polyline(bitrates, W, H - 4, maxMbps * 1.1)} className="line bitrate" />
          <polyline points={polyline(latencies, W, H - 4, maxMs * 1.1)} className="line latency" />
        </svg>
      ) : (
        <p className="empty">Waiting for stream statistics (bitrate, latency)…</p>
      )}
      {have && (
        <figcaption>
          <span className="key bitrate">bitrate (max {maxMbps.toFixed(1)} Mbit/s)</span>
          <span className="key latency">latency (max {maxMs.toFixed(1)} ms)</span>
        </figcaption>
      )}
    </figure>
  );
}
