import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';
import { api, setCsrfToken } from '../api';
import { Button, ErrorNotice, Field } from '../components/ui';

export function LoginPage() {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const login = useMutation({
    mutationFn: () => api.login(username.trim(), password),
    onSuccess: (s) => {
      setCsrfToken(s.csrf_token);
      qc.setQueryData(['session'], s);
      void navigate({ to: '/' });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    login.mutate();
  };
  return (
    <main className="page narrow auth" id="main">
      <div className="brand big">
        <span className="logo" aria-hidden="true" />
        punktfunk
      </div>
      <h1>Log in</h1>
      <form onSubmit={submit} className="card">
        <Field label="User name" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
        <ErrorNotice error={login.error} />
        <Button type="submit" busy={login.isPending} busyLabel="Logging in">
          Log in
        </Button>
        <p className="hint">
          Forgot the password? On the box, run <code>punktfunk-host admin reset-password</code>.
        </p>
      </form>
    </main>
  );
}
