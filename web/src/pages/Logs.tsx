import { useQuery } from '@tanstack/react-query';
import { useEffect, useId, useRef, useState } from 'react';
import { api, type LogLine } from '../api';
import { ErrorNotice } from '../components/ui';

const LEVELS = ['ERROR', 'WARN', 'INFO', 'DEBUG'] as const;
const KEEP = 2000;

export function LogsPage() {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [level, setLevel] = useState<(typeof LEVELS)[number]>('INFO');
  const [follow, setFollow] = useState(true);
  const after = lines.length ? lines[lines.length - 1]!.seq : 0;
  const logs = useQuery({ queryKey: ['logs', after], queryFn: () => api.logs(after), refetchInterval: 2000 });
  const box = useRef<HTMLPreElement>(null);
  const levelId = useId();
  const followId = useId();
  useEffect(() => {
    const fresh = logs.data?.lines ?? [];
    if (fresh.length) setLines((l) => [...l, ...fresh.filter((x) => x.seq > after)].slice(-KEEP));
  }, [logs.data, after]);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines, follow, level]);
  const rank = (l: string) => LEVELS.indexOf(l as (typeof LEVELS)[number]);
  const shown = lines.filter((l) => rank(l.level) !== -1 && rank(l.level) <= rank(level));
  return (
    <>
      <h1>Logs</h1>
      <div className="toolbar">
        <div className="field inline">
          <label htmlFor={levelId}>Show</label>
          <select id={levelId} value={level} onChange={(e) => setLevel(e.target.value as (typeof LEVELS)[number])}>
            <option value="ERROR">errors</option>
            <option value="WARN">warnings and errors</option>
            <option value="INFO">info and above</option>
            <option value="DEBUG">everything</option>
          </select>
        </div>
        <div className="field inline check">
          <input id={followId} type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} />
          <label htmlFor={followId}>Follow new lines</label>
        </div>
      </div>
      <ErrorNotice error={logs.error} />
      <pre className="log" ref={box} tabIndex={0} aria-label="Recent log lines" aria-live="off">
        {shown.length === 0
          ? 'No log lines yet.'
          : shown.map((l) => (
              <div key={l.seq} className={`log-line ${l.level.toLowerCase()}`}>
                <time dateTime={new Date(l.unix_ms).toISOString()}>{new Date(l.unix_ms).toLocaleTimeString()}</time>{' '}
                <span className="lvl">{l.level.padEnd(5)}</span> {l.message}
              </div>
            ))}
      </pre>
      <p className="hint">The host keeps its last 1000 lines here; the full log is in the journal (journalctl -u punktfunk-host).</p>
    </>
  );
}
