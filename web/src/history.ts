// The dashboard chart's memory: recent samples of each session's bitrate and latency,
// kept in the page (the host reports only the current values).

export type Sample = { t: number; bitrate_kbps: number | null; latency_ms: number | null };

/** Samples kept per session: 90 at one poll every 2 s is three minutes. */
export const MAX_SAMPLES = 90;

export type History = Record<string, Sample[]>;

/** Adds one sample per live session; sessions that ended are dropped. */
export function record(
  history: History,
  now: number,
  sessions: { key: string; bitrate_kbps: number | null; latency_ms: number | null }[],
): History {
  const next: History = {};
  for (const s of sessions) {
    const prev = history[s.key] ?? [];
    const samples = [...prev, { t: now, bitrate_kbps: s.bitrate_kbps, latency_ms: s.latency_ms }];
    next[s.key] = samples.slice(-MAX_SAMPLES);
  }
  return next;
}

/** SVG polyline points for `values` in a `width` x `height` box; gaps (null) are skipped. */
export function polyline(values: (number | null)[], width: number, height: number, max?: number): string {
  const top = max ?? Math.max(1, ...values.filter((v): v is number => v !== null));
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => (v === null ? null : `${(i * step).toFixed(1)},${(height - (v / top) * height).toFixed(1)}`))
    .filter((p): p is string => p !== null)
    .join(' ');
}
