import { useQuery } from '@tanstack/react-query';
import { Link } from '@tanstack/react-router';
import { useEffect, useState } from 'react';
import { api, type LiveSession } from '../api';
import { Chart } from '../components/Chart';
import { Card, ErrorNotice, Loading, Notice } from '../components/ui';
import { bitrate, duration } from '../format';
import { record, type History } from '../history';

const key = (s: LiveSession) => `${s.client_fingerprint}:${s.app_id}:${s.started_at ?? 'launched'}`;

export function DashboardPage() {
  const status = useQuery({ queryKey: ['status'], queryFn: api.status, refetchInterval: 2000 });
  const [history, setHistory] = useState<History>({});
  useEffect(() => {
    if (!status.data) return;
    setHistory((h) =>
      record(
        h,
        status.dataUpdatedAt,
        status.data.sessions.map((s) => ({ key: key(s), bitrate_kbps: s.bitrate_kbps, latency_ms: s.latency_ms })),
      ),
    );
  }, [status.data, status.dataUpdatedAt]);

  if (status.isPending) return <Loading what="the host's status" />;
  if (status.error) return <ErrorNotice error={status.error} />;
  const st = status.data;
  return (
    <>
      <h1>Dashboard</h1>
      {(st.warnings ?? []).map((w) => (
        <Notice key={w} kind="error">
          {w}
        </Notice>
      ))}
      {st.pairing_waiting && (
        <Notice kind="info">
          A Moonlight client is waiting for its PIN. <Link to="/pairing">Enter it on the Pairing page</Link>.
        </Notice>
      )}
      <Card title="Live sessions">
        {st.sessions.length === 0 ? (
          <p className="empty-state">
            Nobody is streaming right now. {st.paired_devices === 0 ? <Link to="/pairing">Pair a device</Link> : 'Start an app from Moonlight.'}
          </p>
        ) : (
          <ul className="sessions">
            {st.sessions.map((s) => (
              <li key={key(s)} className="session">
                <div className="session-head">
                  <strong>{s.client_name}</strong> — {s.app_title}
                  <span className={`badge ${s.state === 'streaming' ? 'ok' : ''}`}>
                    {s.state === 'streaming' ? 'streaming' : 'starting'}
                  </span>
                </div>
                <dl className="stats">
                  <div>
                    <dt>Resolution</dt>
                    <dd>{s.width && s.height ? `${s.width}×${s.height}` : '–'}</dd>
                  </div>
                  <div>
                    <dt>Frame rate</dt>
                    <dd className="fps">{s.fps !== null ? `${Math.round(s.fps)} fps` : '–'}</dd>
                  </div>
                  <div>
                    <dt>Bitrate</dt>
                    <dd>{bitrate(s.bitrate_kbps)}</dd>
                  </div>
                  <div>
                    <dt>Latency</dt>
                    <dd>{s.latency_ms !== null ? `${s.latency_ms.toFixed(1)} ms` : '–'}</dd>
                  </div>
                  <div>
                    <dt>Loss</dt>
                    <dd>{s.loss_percent !== null ? `${s.loss_percent.toFixed(2)} %` : '–'}</dd>
                  </div>
                  <div>
                    <dt>Frames sent</dt>
                    <dd className="frames">{s.frames !== null ? s.frames.toLocaleString('en') : '–'}</dd>
                  </div>
                  <div>
                    <dt>Codec</dt>
                    <dd>{s.codec ?? '–'}</dd>
                  </div>
                </dl>
                <Chart samples={history[key(s)] ?? []} label={`${s.client_name} stream`} />
              </li>
            ))}
          </ul>
        )}
      </Card>
      <div className="grid">
        <Card title="Host">
          <dl className="facts">
            <dt>Name</dt>
            <dd>{st.hostname}</dd>
            <dt>Version</dt>
            <dd>punktfunk {st.version}</dd>
            <dt>Up for</dt>
            <dd>{duration(st.uptime_secs)}</dd>
            <dt>Paired devices</dt>
            <dd>
              <Link to="/devices">{st.paired_devices}</Link>
            </dd>
            <dt>Certificate</dt>
            <dd>
              <code className="fingerprint" title="SHA-256 of the host certificate">
                {st.cert_fingerprint}
              </code>
              <span className="hint block">Matches what your browser shows for this page's certificate (SHA-256).</span>
            </dd>
          </dl>
        </Card>
        <Card title="Game sessions">
          <dl className="facts">
            <dt>Compositor</dt>
            <dd>{st.display_backend === 'none' ? 'none: launches show the test pattern' : st.display_backend}</dd>
            {st.display_session && (
              <>
                <dt>{st.display_session.state === 'running' ? 'Running' : 'Last session'}</dt>
                <dd>
                  {st.display_session.command ?? 'desktop'} at {st.display_session.mode}{' '}
                  <span className={`badge ${st.display_session.state === 'running' ? 'ok' : ''}`}>
                    {st.display_session.state.replace('_', ' ')}
                  </span>
                  {st.display_session.exit_code !== null && ` (exit code ${st.display_session.exit_code})`}
                  {st.display_session.reason && <span className="hint block">{st.display_session.reason}</span>}
                </dd>
                <dt>Launch to first frame</dt>
                <dd>
                  {st.display_session.launch_to_first_frame_ms !== null
                    ? `${Math.round(st.display_session.launch_to_first_frame_ms)} ms`
                    : '–'}
                </dd>
              </>
            )}
            {st.checks.map((c) => (
              <div key={c.name} className="contents">
                <dt>{c.name}</dt>
                <dd>
                  <span className={`badge ${c.ok ? 'ok' : ''}`}>{c.ok ? 'OK' : 'missing'}</span> {c.detail}
                  {c.fix && <span className="hint block">{c.fix}</span>}
                </dd>
              </div>
            ))}
          </dl>
        </Card>
        <Card title="Encoding">
          <dl className="facts">
            <dt>GPU</dt>
            <dd>
              {st.gpus.length
                ? st.gpus.map((g) => `${g.name}${g.driver ? ` (${g.driver})` : ''}`).join(', ')
                : 'none found: encoding runs on the CPU'}
            </dd>
            {st.encoders.map((e) => (
              <div key={e.codec} className="contents">
                <dt>{e.codec.toUpperCase()}</dt>
                <dd>
                  {e.name} <span className={`badge ${e.hardware ? 'ok' : ''}`}>{e.hardware ? 'hardware' : 'software'}</span>
                </dd>
              </div>
            ))}
            {st.encoders.length === 0 && (
              <>
                <dt>Encoders</dt>
                <dd>none opened: the Logs page says why</dd>
              </>
            )}
          </dl>
        </Card>
      </div>
    </>
  );
}
