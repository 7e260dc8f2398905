// The management API, typed. Every state-changing request carries the session's CSRF
// token; the session cookie itself is HttpOnly and travels by itself.

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;

/** Remembers the CSRF token of the current session (from login, setup or /auth/session). */
export function setCsrfToken(token: string | null) {
  csrfToken = token;
}

const NETWORK_ERROR =
  'Cannot reach the punktfunk host. Check that it is switched on and on this network, then try again.';

export async function request<T>(
  method: string,
  path: string,
  body?: unknown,
  init: { raw?: Blob; contentType?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let payload: BodyInit | undefined;
  if (init.raw) {
    headers['Content-Type'] = init.contentType ?? 'application/octet-stream';
    payload = init.raw;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let resp: Response;
  try {
    resp = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, NETWORK_ERROR);
  }
  if (resp.status === 204) {
    return undefined as T;
  }
  const text = await resp.text();
  let data: unknown = undefined;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!resp.ok) {
    const message =
      (data as { error?: string } | undefined)?.error ??
      `The host answered ${resp.status} ${resp.statusText}. Try again; if it keeps happening, look at the Logs page.`;
    throw new ApiError(resp.status, message);
  }
  return data as T;
}

export type SetupStatus = { needs_setup: boolean; setup_code_file: string | null };
export type SessionView = { username: string; csrf_token: string; expires_at: number };
export type Encoder = { codec: string; name: string; hardware: boolean };
export type Gpu = { vendor: string; name: string; driver: string | null };
export type LiveSession = {
  state: 'streaming' | 'launched';
  client_name: string;
  client_fingerprint: string;
  app_id: number;
  app_title: string;
  protocol: string;
  started_at: number | null;
  width: number | null;
  height: number | null;
  fps: number | null;
  codec: string | null;
  bitrate_kbps: number | null;
  latency_ms: number | null;
  loss_percent: number | null;
  frames: number | null;
};
export type Ports = {
  http: number;
  https: number;
  web: number;
  rtsp: number;
  video: number;
  control: number;
  audio: number;
};
export type Status = {
  version: string;
  hostname: string;
  uptime_secs: number;
  cert_fingerprint: string;
  encoders: Encoder[];
  gpus: Gpu[];
  sessions: LiveSession[];
  pairing_waiting: boolean;
  paired_devices: number;
  ports: Ports;
  warnings: string[];
  display_backend: string;
  display_session: DisplaySession | null;
  checks: Check[];
};
export type DisplaySession = {
  id: string;
  backend: string;
  state: 'running' | 'app_exited' | 'compositor_exited' | 'ended' | 'failed';
  mode: string;
  command: string | null;
  compositor_pid: number | null;
  app_pid: number | null;
  launch_to_first_frame_ms: number | null;
  exit_code: number | null;
  exit_signal: number | null;
  reason: string | null;
};
export type Check = { name: string; ok: boolean; detail: string; fix: string | null; required: boolean };
export type Device = {
  id: number;
  name: string;
  protocol: string;
  fingerprint: string;
  paired_at: number;
  last_seen: number | null;
  active: boolean;
};
export type PairingRequest = { id: number; address: string; device: string | null; expires_in_secs: number };
export type PairingStatus = {
  waiting_for_pin: boolean;
  waiting: PairingRequest[];
  native: { pin: string; expires_at: number } | null;
};
export type Paired = { paired: boolean; name: string; fingerprint: string };
export type App = {
  id: number;
  title: string;
  command: string | null;
  source: 'built_in' | 'config' | 'added';
  editable: boolean;
  custom_box_art: boolean;
};
export type Settings = {
  hostname: string;
  hostname_locked: boolean;
  default_encoder: string;
  encoder_choices: string[];
  bitrate_cap_kbps: number;
  fec_percent: number;
  port_base: number;
  port_base_setting: number | null;
  port_base_locked: boolean;
  ports: Ports;
  restart_required: boolean;
};
export type SettingsPatch = Partial<{
  hostname: string;
  default_encoder: string;
  bitrate_cap_kbps: number;
  fec_percent: number;
  port_base: number;
}>;
export type LogLine = { seq: number; unix_ms: number; level: string; target: string; message: string };
export type PortCheck = { port: number; protocol: string; purpose: string; listening: boolean | null };
export type NetworkCheck = {
  addresses: string[];
  ports: PortCheck[];
  firewalls: { tool: string; command: string }[];
  hints: string[];
};

export const api = {
  setupStatus: () => request<SetupStatus>('GET', '/api/v1/setup'),
  completeSetup: (setup_code: string, username: string, password: string) =>
    request<SessionView>('POST', '/api/v1/setup', { setup_code, username, password }),
  session: () => request<SessionView>('GET', '/api/v1/auth/session'),
  login: (username: string, password: string) =>
    request<SessionView>('POST', '/api/v1/auth/login', { username, password }),
  logout: () => request<void>('POST', '/api/v1/auth/logout'),
  changePassword: (current_password: string, new_password: string) =>
    request<void>('POST', '/api/v1/auth/password', { current_password, new_password }),
  status: () => request<Status>('GET', '/api/v1/status'),
  devices: () => request<Device[]>('GET', '/api/v1/devices'),
  renameDevice: (id: number, name: string) =>
    request<Device>('PATCH', `/api/v1/devices/${id}`, { name }),
  revokeDevice: (id: number) => request<void>('DELETE', `/api/v1/devices/${id}`),
  pairing: () => request<PairingStatus>('GET', '/api/v1/pairing'),
  enterPin: (pin: string, name?: string, requestId?: number) =>
    request<Paired>('POST', '/api/v1/pairing/pin', {
      pin,
      ...(name ? { name } : {}),
      ...(requestId !== undefined ? { request: requestId } : {}),
    }),
  armNative: () => request<{ pin: string; expires_at: number }>('POST', '/api/v1/pairing/native'),
  disarmNative: () => request<void>('DELETE', '/api/v1/pairing/native'),
  apps: () => request<App[]>('GET', '/api/v1/apps'),
  createApp: (title: string, command: string) =>
    request<App>('POST', '/api/v1/apps', { title, command }),
  updateApp: (id: number, change: { title?: string; command?: string }) =>
    request<App>('PATCH', `/api/v1/apps/${id}`, change),
  deleteApp: (id: number) => request<void>('DELETE', `/api/v1/apps/${id}`),
  uploadBoxArt: (id: number, file: Blob) =>
    request<void>('PUT', `/api/v1/apps/${id}/box-art`, undefined, { raw: file, contentType: 'image/png' }),
  deleteBoxArt: (id: number) => request<void>('DELETE', `/api/v1/apps/${id}/box-art`),
  settings: () => request<Settings>('GET', '/api/v1/settings'),
  updateSettings: (patch: SettingsPatch) => request<Settings>('PATCH', '/api/v1/settings', patch),
  logs: (after: number) => request<{ lines: LogLine[] }>('GET', `/api/v1/logs?after=${after}&limit=500`),
  network: () => request<NetworkCheck>('GET', '/api/v1/network'),
  restart: () => request<{ restarting: boolean; message: string }>('POST', '/api/v1/restart'),
};

/** Box art URL; `version` busts the browser cache after an upload. */
export const boxArtUrl = (id: number, version: number) => `/api/v1/apps/${id}/box-art?v=${version}`;
