// Routes, and the gate in front of them: first-run setup until an admin exists, then
// the login page until there is a session.

import { MutationCache, QueryCache, QueryClient } from '@tanstack/react-query';
import { createRootRouteWithContext, createRoute, createRouter, Outlet, redirect } from '@tanstack/react-router';
import { ApiError, api, setCsrfToken } from './api';
import { Layout } from './components/Layout';
import { AppsPage } from './pages/Apps';
import { DashboardPage } from './pages/Dashboard';
import { DevicesPage } from './pages/Devices';
import { LoginPage } from './pages/Login';
import { LogsPage } from './pages/Logs';
import { PairingPage } from './pages/Pairing';
import { SettingsPage } from './pages/Settings';
import { SetupPage } from './pages/Setup';
import { NotFound } from './components/NotFound';

function onApiError(error: unknown) {
  // A session that ended (logout elsewhere, password change, expiry): back to login.
  if (error instanceof ApiError && error.status === 401 && !window.location.pathname.startsWith('/login')) {
    setCsrfToken(null);
    queryClient.removeQueries({ queryKey: ['session'] });
    void router.navigate({ to: '/login' });
  }
}

export const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError: onApiError }),
  mutationCache: new MutationCache({ onError: onApiError }),
  defaultOptions: {
    queries: { retry: (n, e) => !(e instanceof ApiError && e.status >= 400 && e.status < 500) && n < 2 },
  },
});

async function loadSession() {
  const s = await queryClient.fetchQuery({ queryKey: ['session'], queryFn: api.session, staleTime: 30_000 });
  setCsrfToken(s.csrf_token);
  return s;
}

async function needsSetup() {
  const s = await queryClient.fetchQuery({ queryKey: ['setup'], queryFn: api.setupStatus, staleTime: 0 });
  return s.needs_setup;
}

const rootRoute = createRootRouteWithContext<{ queryClient: QueryClient }>()({
  component: () => <Outlet />,
  notFoundComponent: NotFound,
});

const setupRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/setup',
  component: SetupPage,
  beforeLoad: async () => {
    if (!(await needsSetup())) throw redirect({ to: '/' });
  },
});

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/login',
  component: LoginPage,
  beforeLoad: async () => {
    if (await needsSetup()) throw redirect({ to: '/setup' });
    const session = await loadSession().catch(() => null);
    if (session) throw redirect({ to: '/' });
  },
});

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: 'app',
  component: Layout,
  beforeLoad: async () => {
    if (await needsSetup()) throw redirect({ to: '/setup' });
    const session = await loadSession().catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    });
    if (!session) throw redirect({ to: '/login' });
    return { session };
  },
});

const dashboardRoute = createRoute({ getParentRoute: () => appRoute, path: '/', component: DashboardPage });
const devicesRoute = createRoute({ getParentRoute: () => appRoute, path: '/devices', component: DevicesPage });
const pairingRoute = createRoute({ getParentRoute: () => appRoute, path: '/pairing', component: PairingPage });
const appsRoute = createRoute({ getParentRoute: () => appRoute, path: '/apps', component: AppsPage });
const settingsRoute = createRoute({ getParentRoute: () => appRoute, path: '/settings', component: SettingsPage });
const logsRoute = createRoute({ getParentRoute: () => appRoute, path: '/logs', component: LogsPage });

const routeTree = rootRoute.addChildren([
  setupRoute,
  loginRoute,
  appRoute.addChildren([dashboardRoute, devicesRoute, pairingRoute, appsRoute, settingsRoute, logsRoute]),
]);

export const router = createRouter({
  routeTree,
  context: { queryClient },
  defaultPendingMs: 300,
  defaultErrorComponent: ({ error }) => (
    <main className="page narrow">
      <h1>Something went wrong</h1>
      <p role="alert" className="notice error">
        {error instanceof Error ? error.message : String(error)}
      </p>
      <p>
        <a href="/">Reload the console</a>
      </p>
    </main>
  ),
});

declare module '@tanstack/react-router' {
  interface Register {
    router: typeof router;
  }
}
