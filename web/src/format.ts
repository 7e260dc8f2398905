// Small formatting helpers shared by the pages.

/** "just now", "5 min ago", "3 h ago", "2 days ago", or "never". */
export function ago(unixSecs: number | null, nowMs = Date.now()): string {
  if (unixSecs === null) return 'never';
  const s = Math.max(0, Math.floor(nowMs / 1000 - unixSecs));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86400);
  return d === 1 ? '1 day ago' : `${d} days ago`;
}

/** 3725 -> "1 h 2 min". */
export function duration(secs: number): string {
  if (secs < 60) return `${Math.floor(secs)} s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days ${h % 24} h`;
}

/** 48000 -> "48.0 Mbit/s", 800 -> "800 kbit/s". */
export function bitrate(kbps: number | null): string {
  if (kbps === null) return '–';
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(1)} Mbit/s`;
  return `${kbps} kbit/s`;
}

/** A fingerprint shortened for lists: first 8 pairs. */
export function shortFingerprint(hex: string): string {
  return (hex.match(/.{1,2}/g) ?? []).slice(0, 8).join(':').toUpperCase();
}

/** Local date and time of a unix timestamp. */
export function dateTime(unixSecs: number): string {
  return new Date(unixSecs * 1000).toLocaleString();
}

/** Whether a PIN looks like what Moonlight shows (4 digits; 4-8 accepted). */
export function isPin(pin: string): boolean {
  return /^[0-9]{4,8}$/.test(pin);
}

/** Normalises a setup code as typed: upper case, separators dropped, grouped in fours. */
export function formatSetupCode(input: string): string {
  const raw = input.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 12);
  return (raw.match(/.{1,4}/g) ?? []).join('-');
}
