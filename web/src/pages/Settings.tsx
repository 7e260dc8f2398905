import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useId, useState, type FormEvent } from 'react';
import { api, type Settings } from '../api';
import { Button, Card, ErrorNotice, Field, Loading, Notice } from '../components/ui';
import { NetworkReport } from './Setup';

export function SettingsPage() {
  const settings = useQuery({ queryKey: ['settings'], queryFn: api.settings });
  return (
    <>
      <h1>Settings</h1>
      {settings.isPending && <Loading what="settings" />}
      <ErrorNotice error={settings.error} />
      {settings.data && <SettingsForm settings={settings.data} />}
      <RestartCard />
      <PasswordCard />
      <Card title="Network">
        <NetworkReport />
      </Card>
    </>
  );
}

function SettingsForm({ settings }: { settings: Settings }) {
  const qc = useQueryClient();
  const encoderId = useId();
  const [hostname, setHostname] = useState(settings.hostname);
  const [encoder, setEncoder] = useState(settings.default_encoder);
  const [mbps, setMbps] = useState(String(settings.bitrate_cap_kbps / 1000));
  const [fec, setFec] = useState(String(settings.fec_percent));
  const [portBase, setPortBase] = useState(String(settings.port_base_setting ?? settings.port_base));
  const [saved, setSaved] = useState(false);
  const save = useMutation({
    mutationFn: () => {
      const patch: Parameters<typeof api.updateSettings>[0] = {
        default_encoder: encoder,
        bitrate_cap_kbps: Math.round(Number(mbps) * 1000),
        fec_percent: Number(fec),
      };
      if (!settings.hostname_locked && hostname.trim() !== settings.hostname) patch.hostname = hostname.trim();
      const base = Number(portBase);
      if (!settings.port_base_locked && base !== (settings.port_base_setting ?? settings.port_base)) patch.port_base = base;
      return api.updateSettings(patch);
    },
    onSuccess: (s) => {
      qc.setQueryData(['settings'], s);
      void qc.invalidateQueries({ queryKey: ['status'] });
      setSaved(true);
    },
  });
  useEffect(() => setSaved(false), [hostname, encoder, mbps, fec, portBase]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <Card title="Streaming">
      <form onSubmit={submit}>
        <Field
          label="Host name"
          value={hostname}
          onChange={(e) => setHostname(e.target.value)}
          disabled={settings.hostname_locked}
          maxLength={63}
          hint={settings.hostname_locked ? 'Set in /etc/punktfunk/host.toml; change it there.' : 'Shown in Moonlight. Applies at once.'}
        />
        <div className="field">
          <label htmlFor={encoderId}>Default encoder</label>
          <select id={encoderId} value={encoder} onChange={(e) => setEncoder(e.target.value)} aria-describedby={`${encoderId}-hint`}>
            {settings.encoder_choices.map((c) => (
              <option key={c} value={c}>
                {c === 'auto' ? 'auto (hardware first)' : c}
              </option>
            ))}
          </select>
          <p className="hint" id={`${encoderId}-hint`}>
            Only encoders that work on this machine are listed.
          </p>
        </div>
        <div className="row">
          <Field
            label="Bitrate cap (Mbit/s)"
            type="number"
            inputMode="decimal"
            min={0.5}
            max={1000}
            step={0.5}
            value={mbps}
            onChange={(e) => setMbps(e.target.value)}
            hint="Clients asking for more get this much."
          />
          <Field
            label="Error correction (%)"
            type="number"
            inputMode="numeric"
            min={0}
            max={80}
            value={fec}
            onChange={(e) => setFec(e.target.value)}
            hint="Extra data that repairs lost packets. 20 suits most Wi-Fi."
          />
        </div>
        <Field
          label="Port base"
          type="number"
          inputMode="numeric"
          min={1024}
          max={65000}
          value={portBase}
          onChange={(e) => setPortBase(e.target.value)}
          disabled={settings.port_base_locked}
          hint={
            settings.port_base_locked
              ? `Fixed by --port-base or the config file (now ${settings.port_base}).`
              : `Every port derives from it (Moonlight's default is 47989). In use now: HTTPS ${settings.ports.https}, HTTP ${settings.ports.http}, console ${settings.ports.web}, RTSP ${settings.ports.rtsp}, UDP ${settings.ports.video}–${settings.ports.audio}.`
          }
        />
        <ErrorNotice error={save.error} />
        {saved && <Notice kind="ok">Saved.</Notice>}
        {settings.restart_required && (
          <Notice kind="warn">The new port base applies after a restart of the host (below).</Notice>
        )}
        <Button type="submit" busy={save.isPending} busyLabel="Saving">
          Save settings
        </Button>
      </form>
    </Card>
  );
}

function RestartCard() {
  const qc = useQueryClient();
  const [phase, setPhase] = useState<'idle' | 'confirm' | 'waiting' | 'back' | 'lost'>('idle');
  const restart = useMutation({
    mutationFn: api.restart,
    onSuccess: async () => {
      setPhase('waiting');
      const started = Date.now();
      // Wait until the host has gone away and answers again (about 5 s).
      await new Promise((r) => setTimeout(r, 1500));
      while (Date.now() - started < 60_000) {
        try {
          await api.setupStatus();
          setPhase('back');
          void qc.invalidateQueries();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
      setPhase('lost');
    },
  });
  return (
    <Card title="Restart">
      <p>Restarting ends running streams; paired devices stay paired.</p>
      {phase === 'idle' && (
        <Button variant="danger" onClick={() => setPhase('confirm')}>
          Restart host
        </Button>
      )}
      {phase === 'confirm' && (
        <div className="actions">
          <Button variant="danger" busy={restart.isPending} busyLabel="Asking the host" onClick={() => restart.mutate()} autoFocus>
            Yes, restart now
          </Button>
          <Button variant="secondary" onClick={() => setPhase('idle')}>
            Cancel
          </Button>
        </div>
      )}
      {phase === 'waiting' && (
        <Notice kind="info">
          <span className="spinner" aria-hidden="true" /> Restarting… this page reconnects when the host is back.
        </Notice>
      )}
      {phase === 'back' && <Notice kind="ok">The host restarted and is back.</Notice>}
      {phase === 'lost' && (
        <Notice kind="error">
          The host has not come back after a minute. Check that the punktfunk service runs on the box (
          <code>systemctl status punktfunk-host</code>).
        </Notice>
      )}
      <ErrorNotice error={restart.error} />
    </Card>
  );
}

function PasswordCard() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [localError, setLocalError] = useState<string | null>(null);
  const change = useMutation({
    mutationFn: () => api.changePassword(current, next),
    onSuccess: () => {
      setCurrent('');
      setNext('');
      setAgain('');
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (next.length < 8) return setLocalError('Choose a new password of at least 8 characters.');
    if (next !== again) return setLocalError('The two new passwords differ.');
    setLocalError(null);
    change.mutate();
  };
  return (
    <Card title="Admin password">
      <form onSubmit={submit}>
        <Field label="Current password" type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
        <div className="row">
          <Field label="New password" type="password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} required />
          <Field label="New password again" type="password" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} required />
        </div>
        {localError && <Notice kind="error">{localError}</Notice>}
        <ErrorNotice error={change.error} />
        {change.isSuccess && <Notice kind="ok">Password changed. Other browsers were logged out.</Notice>}
        <Button type="submit" busy={change.isPending} busyLabel="Changing">
          Change password
        </Button>
      </form>
    </Card>
  );
}
