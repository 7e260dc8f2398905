// First-run wizard: setup code, admin account, host name, network check, first device.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';
import { ApiError, api, setCsrfToken } from '../api';
import { formatSetupCode } from '../format';
import { Button, Card, ErrorNotice, Field, Loading, Notice } from '../components/ui';
import { MoonlightSteps } from '../components/MoonlightSteps';
import { PinForm } from '../components/PinForm';

const STEPS = ['Setup code', 'Admin account', 'Host name', 'Network', 'First device'] as const;

export function SetupPage() {
  const [step, setStep] = useState(0);
  const [code, setCode] = useState('');
  return (
    <main className="page narrow wizard" id="main">
      <div className="brand big">
        <span className="logo" aria-hidden="true" />
        punktfunk
      </div>
      <h1>Set up your streaming box</h1>
      <ol className="stepper" aria-label="Setup steps">
        {STEPS.map((s, i) => (
          <li key={s} aria-current={i === step ? 'step' : undefined} className={i < step ? 'done' : i === step ? 'current' : ''}>
            <span className="num">{i + 1}</span> <span className="label">{s}</span>
          </li>
        ))}
      </ol>
      {step === 0 && <CodeStep code={code} setCode={setCode} next={() => setStep(1)} />}
      {step === 1 && <AccountStep code={code} back={() => setStep(0)} next={() => setStep(2)} />}
      {step === 2 && <HostnameStep next={() => setStep(3)} />}
      {step === 3 && <NetworkStep next={() => setStep(4)} />}
      {step === 4 && <FirstDeviceStep />}
    </main>
  );
}

function CodeStep({ code, setCode, next }: { code: string; setCode: (c: string) => void; next: () => void }) {
  const setup = useQuery({ queryKey: ['setup'], queryFn: api.setupStatus });
  const [error, setError] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (code.replace(/-/g, '').length !== 12) {
      setError('The setup code has 12 letters and digits, like ABCD-EFGH-JKMN.');
      return;
    }
    next();
  };
  return (
    <form className="card" onSubmit={submit}>
      <h2>Enter the setup code</h2>
      <p>
        So that nobody else on your network can claim this box, the first account needs a one-time code that only
        someone at the box can read. The host prints it when it starts: on its screen, and in its log (
        <code>journalctl -u punktfunk-host</code>).
        {setup.data?.setup_code_file && (
          <>
            {' '}
            It is also in the file <code>{setup.data.setup_code_file}</code>.
          </>
        )}
      </p>
      <Field
        label="Setup code"
        className="code-input"
        autoComplete="off"
        autoCapitalize="characters"
        spellCheck={false}
        placeholder="ABCD-EFGH-JKMN"
        value={code}
        onChange={(e) => {
          setCode(formatSetupCode(e.target.value));
          setError(null);
        }}
        error={error}
        autoFocus
      />
      <div className="actions">
        <Button type="submit">Continue</Button>
      </div>
    </form>
  );
}

function AccountStep({ code, back, next }: { code: string; back: () => void; next: () => void }) {
  const qc = useQueryClient();
  const [username, setUsername] = useState('admin');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [localError, setLocalError] = useState<string | null>(null);
  const create = useMutation({
    mutationFn: () => api.completeSetup(code, username.trim(), password),
    onSuccess: (s) => {
      setCsrfToken(s.csrf_token);
      qc.setQueryData(['session'], s);
      qc.setQueryData(['setup'], { needs_setup: false, setup_code_file: null });
      next();
    },
  });
  const wrongCode = create.error instanceof ApiError && create.error.status === 401;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (password.length < 8) return setLocalError('Choose a password of at least 8 characters.');
    if (password !== again) return setLocalError('The two passwords differ: type the same password twice.');
    setLocalError(null);
    create.mutate();
  };
  return (
    <form className="card" onSubmit={submit}>
      <h2>Create the admin account</h2>
      <p>This account manages the box: pairing devices, apps and settings.</p>
      <Field label="User name" autoComplete="username" required maxLength={64} value={username} onChange={(e) => setUsername(e.target.value)} />
      <Field
        label="Password"
        type="password"
        autoComplete="new-password"
        required
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        hint="At least 8 characters."
        autoFocus
      />
      <Field label="Password again" type="password" autoComplete="new-password" required value={again} onChange={(e) => setAgain(e.target.value)} />
      {localError && <Notice kind="error">{localError}</Notice>}
      <ErrorNotice error={create.error} />
      <div className="actions">
        <Button variant="secondary" onClick={back}>
          {wrongCode ? 'Fix the setup code' : 'Back'}
        </Button>
        <Button type="submit" busy={create.isPending} busyLabel="Creating the account">
          Create account
        </Button>
      </div>
    </form>
  );
}

function HostnameStep({ next }: { next: () => void }) {
  const qc = useQueryClient();
  const settings = useQuery({ queryKey: ['settings'], queryFn: api.settings });
  const [name, setName] = useState<string | null>(null);
  const save = useMutation({
    mutationFn: (hostname: string) => api.updateSettings({ hostname }),
    onSuccess: (s) => {
      qc.setQueryData(['settings'], s);
      next();
    },
  });
  if (!settings.data) return <Loading what="settings" />;
  const value = name ?? settings.data.hostname;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value === settings.data.hostname || settings.data.hostname_locked) next();
    else save.mutate(value.trim());
  };
  return (
    <form className="card" onSubmit={submit}>
      <h2>Name this host</h2>
      <p>Moonlight shows this name in its host list.</p>
      <Field
        label="Host name"
        value={value}
        onChange={(e) => setName(e.target.value)}
        disabled={settings.data.hostname_locked}
        maxLength={63}
        hint={
          settings.data.hostname_locked
            ? 'Set in the config file (/etc/punktfunk/host.toml); change it there.'
            : 'Letters, digits and "-", like living-room.'
        }
        autoFocus
      />
      <ErrorNotice error={save.error} />
      <div className="actions">
        <Button type="submit" busy={save.isPending} busyLabel="Saving">
          Continue
        </Button>
      </div>
    </form>
  );
}

export function NetworkReport() {
  const net = useQuery({ queryKey: ['network'], queryFn: api.network });
  if (net.isPending) return <Loading what="the network check" />;
  if (net.error) return <ErrorNotice error={net.error} />;
  const n = net.data;
  return (
    <>
      {n.addresses.length > 0 && (
        <p>
          This box is at <strong>{n.addresses.join(', ')}</strong>.
        </p>
      )}
      <ul className="hints">
        {n.hints.map((h) => (
          <li key={h}>{h}</li>
        ))}
      </ul>
      <div className="table-wrap">
        <table>
          <caption>Ports Moonlight uses</caption>
          <thead>
            <tr>
              <th scope="col">Port</th>
              <th scope="col">Protocol</th>
              <th scope="col">For</th>
              <th scope="col">Check</th>
            </tr>
          </thead>
          <tbody>
            {n.ports.map((p) => (
              <tr key={`${p.protocol}${p.port}`}>
                <td>{p.port}</td>
                <td>{p.protocol.toUpperCase()}</td>
                <td>{p.purpose}</td>
                <td>
                  {p.listening === null ? (
                    <span className="badge">not checked</span>
                  ) : p.listening ? (
                    <span className="badge ok">answering</span>
                  ) : (
                    <span className="badge warn">not answering yet</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {n.firewalls.map((f) => (
        <div key={f.tool}>
          <p>
            <strong>{f.tool}</strong> is active. To let Moonlight in, run on the box as root:
          </p>
          <pre className="command">{f.command}</pre>
        </div>
      ))}
    </>
  );
}

function NetworkStep({ next }: { next: () => void }) {
  return (
    <section className="card">
      <h2>Network check</h2>
      <NetworkReport />
      <div className="actions">
        <Button onClick={next}>Continue</Button>
      </div>
    </section>
  );
}

function FirstDeviceStep() {
  const navigate = useNavigate();
  const net = useQuery({ queryKey: ['network'], queryFn: api.network });
  const [paired, setPaired] = useState<string | null>(null);
  return (
    <Card title="Pair your first device">
      <MoonlightSteps address={net.data?.addresses[0]} />
      <PinForm onPaired={(p) => setPaired(p.name)} />
      <div className="actions">
        <Button variant={paired ? 'primary' : 'secondary'} onClick={() => void navigate({ to: '/' })}>
          {paired ? 'Finish' : 'Skip for now'}
        </Button>
      </div>
    </Card>
  );
}
