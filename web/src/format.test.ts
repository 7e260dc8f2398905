import { describe, expect, it } from 'vitest';
import { ago, bitrate, duration, formatSetupCode, isPin, shortFingerprint } from './format';
import { MAX_SAMPLES, polyline, record } from './history';

describe('format', () => {
  it('says how long ago', () => {
    const now = 1_800_000_000_000;
    expect(ago(null, now)).toBe('never');
    expect(ago(now / 1000 - 5, now)).toBe('just now');
    expect(ago(now / 1000 - 300, now)).toBe('5 min ago');
    expect(ago(now / 1000 - 7200, now)).toBe('2 h ago');
    expect(ago(now / 1000 - 86400, now)).toBe('1 day ago');
  });
  it('formats durations and bitrates', () => {
    expect(duration(42)).toBe('42 s');
    expect(duration(3725)).toBe('1 h 2 min');
    expect(bitrate(48000)).toBe('48.0 Mbit/s');
    expect(bitrate(800)).toBe('800 kbit/s');
    expect(bitrate(null)).toBe('–');
  });
  it('checks PINs and setup codes as typed', () => {
    expect(isPin('1234')).toBe(true);
    expect(isPin('12a4')).toBe(false);
    expect(isPin('123')).toBe(false);
    expect(formatSetupCode('abcd efgh-jkmn')).toBe('ABCD-EFGH-JKMN');
    expect(formatSetupCode('abcdefghjkmnXYZ')).toBe('ABCD-EFGH-JKMN');
    expect(shortFingerprint('ab'.repeat(32))).toBe('AB:AB:AB:AB:AB:AB:AB:AB');
  });
});

describe('history', () => {
  it('keeps a bounded series per live session', () => {
    let h = {};
    for (let i = 0; i < MAX_SAMPLES + 10; i++) {
      h = record(h, i, [{ key: 'a', bitrate_kbps: i, latency_ms: 5 }]);
    }
    const a = (h as Record<string, { t: number }[]>)['a']!;
    expect(a.length).toBe(MAX_SAMPLES);
    expect(a[0]!.t).toBe(10);
    h = record(h, 999, [{ key: 'b', bitrate_kbps: 1, latency_ms: null }]);
    expect(Object.keys(h)).toEqual(['b']);
  });
  it('draws polylines scaled to the box and skips gaps', () => {
    expect(polyline([0, 5, 10], 100, 50)).toBe('0.0,50.0 50.0,25.0 100.0,0.0');
    expect(polyline([null, 10], 100, 50)).toBe('100.0,0.0');
    expect(polyline([], 100, 50)).toBe('');
  });
});
