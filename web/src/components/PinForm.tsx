// Typing the PIN a Moonlight client shows: waits for the client to finish pairing and
// says how it went.

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api, type Paired } from '../api';
import { isPin } from '../format';
import { Button, ErrorNotice, Field, Notice, Spinner } from './ui';

export function PinForm({ onPaired }: { onPaired?: (p: Paired) => void }) {
  const qc = useQueryClient();
  const [pin, setPin] = useState('');
  const [name, setName] = useState('');
  const [touched, setTouched] = useState(false);
  const [chosen, setChosen] = useState<number | null>(null);
  const status = useQuery({ queryKey: ['pairing'], queryFn: api.pairing, refetchInterval: 1000 });
  // With several devices waiting, the PIN goes to the one the user picks (and only it).
  const requests = status.data?.waiting ?? [];
  const several = requests.length > 1;
  const choice = several && requests.some((r) => r.id === chosen) ? chosen : null;
  const pair = useMutation({
    mutationFn: () => api.enterPin(pin, name.trim() || undefined, choice ?? undefined),
    onSuccess: (p) => {
      setPin('');
      setName('');
      setTouched(false);
      void qc.invalidateQueries({ queryKey: ['devices'] });
      void qc.invalidateQueries({ queryKey: ['status'] });
      onPaired?.(p);
    },
  });
  const pinError = touched && !isPin(pin) ? 'Type the 4 digits Moonlight shows.' : null;
  const choiceMissing = several && choice === null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (isPin(pin) && !choiceMissing) pair.mutate();
  };
  const waiting = status.data?.waiting_for_pin ?? false;
  return (
    <form onSubmit={submit} className="pin-form" aria-describedby="pin-state">
      <p id="pin-state" className={`pin-state ${waiting ? 'ready' : ''}`} role="status" aria-live="polite">
        {waiting ? (
          <>● A Moonlight client is waiting for its PIN.</>
        ) : (
          <>
            <Spinner /> Waiting for a Moonlight client to start pairing…
          </>
        )}
      </p>
      {several && (
        <fieldset className="pin-choice">
          <legend>Several devices are waiting. Which one shows this PIN?</legend>
          {requests.map((r) => (
            <label key={r.id}>
              <input
                type="radio"
                name="pairing-request"
                value={r.id}
                checked={choice === r.id}
                onChange={() => setChosen(r.id)}
              />{' '}
              {r.device ?? 'Unnamed device'} at {r.address}
            </label>
          ))}
          {touched && choiceMissing && <p className="field-error">Choose the device that shows this PIN.</p>}
        </fieldset>
      )}
      <div className="row">
        <Field
          label="PIN shown by Moonlight"
          className="pin-input"
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9]*"
          maxLength={8}
          value={pin}
          onChange={(e) => setPin(e.target.value.replace(/\D/g, ''))}
          onBlur={() => setTouched(true)}
          error={pinError}
        />
        <Field
          label="Device name (optional)"
          placeholder="Living room TV"
          maxLength={64}
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
      </div>
      <ErrorNotice error={pair.error} />
      {pair.data && (
        <Notice kind="ok">
          Paired “{pair.data.name}”. It can now see the apps and start streaming.
        </Notice>
      )}
      <Button type="submit" busy={pair.isPending} busyLabel="Pairing — finish in Moonlight if it asks…">
        Pair device
      </Button>
    </form>
  );
}
