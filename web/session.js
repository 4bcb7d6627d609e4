// The logged-in user on staff pages: without a session the page sends the user to the login page
// (and back here afterwards); with one it shows who is logged in and a log-out button in the top
// bar. The server decides what each role may see; this only keeps people from staring at errors.
// Pages that import it get `session`: a promise of the user (null when offline or refused).
// A page marked `<body data-access="public">` (the map) also serves visitors who are not logged
// in: for them it shows a log-in link instead, and `session` is null.

const LOGIN = 'login.html';

function toLogin(extra = '') {
  const next = encodeURIComponent(location.pathname.replace(/^\//, '') + location.search);
  location.replace(`${LOGIN}?next=${next}${extra}`);
}

async function showSession() {
  let response;
  try {
    response = await fetch('/api/v1/session', { headers: { Accept: 'application/json' } });
  } catch {
    return null; // offline: the page reports its own network errors
  }
  if (response.status === 401) {
    if (document.body.dataset.access === 'public') return showLogInLink();
    return toLogin() ?? null;
  }
  if (!response.ok) return null;
  const user = await response.json();
  if (user.must_change_password) return toLogin('&change=1') ?? null;
  document.body.dataset.role = user.role;
  if (user.scope) document.body.dataset.scope = user.scope;
  const bar = document.querySelector('.topbar-actions');
  if (!bar) return user;
  const who = document.createElement('span');
  who.className = 'session-user';
  who.id = 'session-user';
  who.textContent = `${user.display_name} · ${user.role_name}${user.scope_name ? ` · ${user.scope_name}` : ''}`;
  const out = document.createElement('button');
  out.type = 'button';
  out.className = 'btn';
  out.id = 'log-out';
  out.title = `${user.display_name} · ${user.role_name}`;
  followLanguage(out, '退出', 'Log out');
  out.addEventListener('click', async () => {
    await fetch('/api/v1/session', { method: 'DELETE' }).catch(() => {});
    location.replace(LOGIN);
  });
  bar.prepend(who, out);
  return user;
}

/** Keeps `node`'s text in the page's language (pages switch it on <html lang>). */
function followLanguage(node, zh, en) {
  const render = () => { node.textContent = document.documentElement.lang.startsWith('en') ? en : zh; };
  render();
  new MutationObserver(render).observe(document.documentElement, { attributes: true, attributeFilter: ['lang'] });
}

function showLogInLink() {
  document.body.dataset.visitor = 'public';
  const bar = document.querySelector('.topbar-actions');
  if (bar) {
    const link = document.createElement('a');
    link.className = 'btn';
    link.id = 'log-in';
    link.style.cssText = 'text-decoration:none;color:inherit';
    link.href = `${LOGIN}?next=${encodeURIComponent(location.pathname.replace(/^\//, '') || 'index.html')}`;
    followLanguage(link, '工作人员登录', 'Staff log-in');
    bar.prepend(link);
  }
  return null;
}

export const session = showSession();

/** Whether region `code` and the user's scope overlap (one lies within the other). */
export function inScope(user, code) {
  const scope = user?.scope;
  return !scope || code.startsWith(scope) || scope.startsWith(code);
}
