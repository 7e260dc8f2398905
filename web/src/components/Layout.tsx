import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link, Outlet, useNavigate } from '@tanstack/react-router';
import { api, setCsrfToken } from '../api';
import { Button } from './ui';

const NAV = [
  { to: '/', label: 'Dashboard' },
  { to: '/pairing', label: 'Pairing' },
  { to: '/devices', label: 'Devices' },
  { to: '/apps', label: 'Apps' },
  { to: '/settings', label: 'Settings' },
  { to: '/logs', label: 'Logs' },
] as const;

export function Layout() {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const session = useQuery({ queryKey: ['session'], queryFn: api.session, staleTime: 30_000 });
  const logout = useMutation({
    mutationFn: api.logout,
    onSettled: () => {
      setCsrfToken(null);
      qc.clear();
      void navigate({ to: '/login' });
    },
  });
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="brand">
          <span className="logo" aria-hidden="true" />
          punktfunk
        </div>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.to}>
                <Link to={n.to} activeOptions={{ exact: n.to === '/' }} activeProps={{ 'aria-current': 'page', className: 'active' }}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="account">
          {session.data && <span className="user">{session.data.username}</span>}
          <Button variant="secondary" busy={logout.isPending} busyLabel="Logging out" onClick={() => logout.mutate()}>
            Log out
          </Button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
