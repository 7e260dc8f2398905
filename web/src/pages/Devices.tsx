import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from '@tanstack/react-router';
import { useState, type FormEvent } from 'react';
import { api, type Device } from '../api';
import { Button, Card, ErrorNotice, Field, Loading, Notice } from '../components/ui';
import { ago, dateTime, shortFingerprint } from '../format';

export function DevicesPage() {
  const devices = useQuery({ queryKey: ['devices'], queryFn: api.devices, refetchInterval: 5000 });
  const [revoked, setRevoked] = useState<string | null>(null);
  return (
    <>
      <h1>Devices</h1>
      <p className="lead">
        Devices paired with this host. Revoking one refuses its next request and ends its stream at once.
      </p>
      {revoked && <Notice kind="ok">Revoked “{revoked}”. It must pair again to stream.</Notice>}
      {devices.isPending && <Loading what="devices" />}
      <ErrorNotice error={devices.error} />
      {devices.data && devices.data.length === 0 && (
        <Card>
          <p className="empty-state">
            No devices yet. <Link to="/pairing">Pair one</Link>.
          </p>
        </Card>
      )}
      <ul className="device-list" aria-label="Paired devices">
        {devices.data?.map((d) => (
          <DeviceItem key={d.id} device={d} onRevoked={setRevoked} />
        ))}
      </ul>
    </>
  );
}

function DeviceItem({ device, onRevoked }: { device: Device; onRevoked: (name: string) => void }) {
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [name, setName] = useState(device.name);
  const rename = useMutation({
    mutationFn: () => api.renameDevice(device.id, name.trim()),
    onSuccess: () => {
      setEditing(false);
      void qc.invalidateQueries({ queryKey: ['devices'] });
    },
  });
  const revoke = useMutation({
    mutationFn: () => api.revokeDevice(device.id),
    onSuccess: () => {
      onRevoked(device.name);
      void qc.invalidateQueries({ queryKey: ['devices'] });
      void qc.invalidateQueries({ queryKey: ['status'] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    rename.mutate();
  };
  return (
    <li className="card device" data-device-id={device.id}>
      {editing ? (
        <form onSubmit={submit} className="row">
          <Field label={`New name for ${device.name}`} value={name} maxLength={64} onChange={(e) => setName(e.target.value)} autoFocus />
          <div className="actions">
            <Button type="submit" busy={rename.isPending} busyLabel="Saving">
              Save
            </Button>
            <Button variant="secondary" onClick={() => setEditing(false)}>
              Cancel
            </Button>
          </div>
        </form>
      ) : (
        <div className="device-head">
          <h2 className="device-name">{device.name}</h2>
          {device.active && <span className="badge ok">streaming</span>}
          <span className="badge">{device.protocol === 'gamestream' ? 'Moonlight' : 'punktfunk'}</span>
        </div>
      )}
      <dl className="facts compact">
        <dt>Paired</dt>
        <dd>{dateTime(device.paired_at)}</dd>
        <dt>Last seen</dt>
        <dd>{ago(device.last_seen)}</dd>
        <dt>Certificate</dt>
        <dd>
          <code title={device.fingerprint}>{shortFingerprint(device.fingerprint)}…</code>
        </dd>
      </dl>
      <ErrorNotice error={rename.error ?? revoke.error} />
      {!editing && (
        <div className="actions">
          <Button variant="secondary" onClick={() => setEditing(true)} aria-label={`Rename ${device.name}`}>
            Rename
          </Button>
          {confirming ? (
            <span className="confirm" role="group" aria-label={`Confirm revoking ${device.name}`}>
              <span>Revoke {device.name}?</span>
              <Button variant="danger" busy={revoke.isPending} busyLabel="Revoking" onClick={() => revoke.mutate()} autoFocus>
                Yes, revoke
              </Button>
              <Button variant="secondary" onClick={() => setConfirming(false)}>
                Keep
              </Button>
            </span>
          ) : (
            <Button variant="danger" onClick={() => setConfirming(true)} aria-label={`Revoke ${device.name}`}>
              Revoke
            </Button>
          )}
        </div>
      )}
    </li>
  );
}
