import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef, useState, type FormEvent } from 'react';
import { api, boxArtUrl, type App } from '../api';
import { Button, Card, ErrorNotice, Field, Loading } from '../components/ui';

const SOURCE: Record<App['source'], string> = {
  built_in: 'built in',
  config: 'config file',
  added: 'added here',
};

export function AppsPage() {
  const apps = useQuery({ queryKey: ['apps'], queryFn: api.apps });
  const [artVersion, setArtVersion] = useState(0);
  return (
    <>
      <h1>Apps</h1>
      <p className="lead">What Moonlight lists on this host. Desktop streams the whole screen.</p>
      <AddApp />
      {apps.isPending && <Loading what="apps" />}
      <ErrorNotice error={apps.error} />
      <ul className="app-grid" aria-label="Apps">
        {apps.data?.map((a) => (
          <AppItem key={a.id} app={a} artVersion={artVersion} onArtChanged={() => setArtVersion((v) => v + 1)} />
        ))}
      </ul>
    </>
  );
}

function AddApp() {
  const qc = useQueryClient();
  const [title, setTitle] = useState('');
  const [command, setCommand] = useState('');
  const add = useMutation({
    mutationFn: () => api.createApp(title.trim(), command.trim()),
    onSuccess: () => {
      setTitle('');
      setCommand('');
      void qc.invalidateQueries({ queryKey: ['apps'] });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    add.mutate();
  };
  return (
    <Card title="Add an app">
      <form onSubmit={submit}>
        <div className="row">
          <Field label="Title" required maxLength={100} value={title} onChange={(e) => setTitle(e.target.value)} placeholder="Steam Big Picture" />
          <Field
            label="Command (optional)"
            value={command}
            onChange={(e) => setCommand(e.target.value)}
            placeholder="steam -gamepadui"
            hint="Run in the streaming session when the app starts."
          />
        </div>
        <ErrorNotice error={add.error} />
        <Button type="submit" busy={add.isPending} busyLabel="Adding">
          Add app
        </Button>
      </form>
    </Card>
  );
}

function AppItem({ app, artVersion, onArtChanged }: { app: App; artVersion: number; onArtChanged: () => void }) {
  const qc = useQueryClient();
  const file = useRef<HTMLInputElement>(null);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [title, setTitle] = useState(app.title);
  const [command, setCommand] = useState(app.command ?? '');
  const refresh = () => qc.invalidateQueries({ queryKey: ['apps'] });
  const save = useMutation({
    mutationFn: () => api.updateApp(app.id, { title: title.trim(), command: command.trim() }),
    onSuccess: () => {
      setEditing(false);
      void refresh();
    },
  });
  const remove = useMutation({ mutationFn: () => api.deleteApp(app.id), onSuccess: refresh });
  const upload = useMutation({
    mutationFn: (f: File) => api.uploadBoxArt(app.id, f),
    onSuccess: () => {
      onArtChanged();
      void refresh();
    },
  });
  const resetArt = useMutation({
    mutationFn: () => api.deleteBoxArt(app.id),
    onSuccess: () => {
      onArtChanged();
      void refresh();
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <li className="card app">
      <img className="box-art" src={boxArtUrl(app.id, artVersion)} alt={`Box art of ${app.title}`} width={150} height={200} />
      <div className="app-body">
        {editing ? (
          <form onSubmit={submit}>
            <Field label="Title" value={title} maxLength={100} onChange={(e) => setTitle(e.target.value)} autoFocus />
            <Field label="Command" value={command} onChange={(e) => setCommand(e.target.value)} hint="Empty: launch nothing." />
            <div className="actions">
              <Button type="submit" busy={save.isPending} busyLabel="Saving">
                Save
              </Button>
              <Button variant="secondary" onClick={() => setEditing(false)}>
                Cancel
              </Button>
            </div>
          </form>
        ) : (
          <>
            <h2>{app.title}</h2>
            <p className="command">{app.command ? <code>{app.command}</code> : <span className="hint">launches nothing</span>}</p>
            <p>
              <span className="badge">{SOURCE[app.source]}</span>
            </p>
          </>
        )}
        <ErrorNotice error={save.error ?? remove.error ?? upload.error ?? resetArt.error} />
        {app.editable && !editing && (
          <div className="actions">
            <Button variant="secondary" onClick={() => setEditing(true)} aria-label={`Edit ${app.title}`}>
              Edit
            </Button>
            <input
              ref={file}
              type="file"
              accept="image/png"
              className="visually-hidden"
              aria-label={`Box art image for ${app.title} (PNG)`}
              onChange={(e) => {
                const f = e.target.files?.[0];
                if (f) upload.mutate(f);
                e.target.value = '';
              }}
            />
            <Button variant="secondary" busy={upload.isPending} busyLabel="Uploading" onClick={() => file.current?.click()}>
              Upload box art
            </Button>
            {app.custom_box_art && (
              <Button variant="secondary" busy={resetArt.isPending} onClick={() => resetArt.mutate()}>
                Use generated art
              </Button>
            )}
            {confirming ? (
              <>
                <Button variant="danger" busy={remove.isPending} busyLabel="Deleting" onClick={() => remove.mutate()} autoFocus>
                  Yes, delete
                </Button>
                <Button variant="secondary" onClick={() => setConfirming(false)}>
                  Keep
                </Button>
              </>
            ) : (
              <Button variant="danger" onClick={() => setConfirming(true)} aria-label={`Delete ${app.title}`}>
                Delete
              </Button>
            )}
          </div>
        )}
        {!app.editable && (
          <p className="hint">
            {app.source === 'config' ? 'Change it in /etc/punktfunk/host.toml.' : 'Built in; always available.'}
          </p>
        )}
      </div>
    </li>
  );
}
