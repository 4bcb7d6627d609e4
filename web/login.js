// The log-in page: POST /api/v1/session sets the HttpOnly session cookie; a one-time password is
// changed here before going on to the page the user came from (`?next=`, same site only).

const $ = (id) => document.getElementById(id);

function nextPage() {
  const next = new URLSearchParams(location.search).get('next') ?? '';
  // Only a path on this site: never an absolute URL someone put in a link.
  return /^[a-z0-9._-]+\.html(\?.*)?$/i.test(next) ? next : 'index.html';
}

function showError(message) {
  $('login-error').textContent = message;
  $('login-error').hidden = false;
}

async function send(method, path, body) {
  const response = await fetch(`/api/v1/${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const wait = response.headers.get('retry-after');
    throw new Error((data?.error?.message ?? `HTTP ${response.status}`) + (wait ? `（${wait} s）` : ''));
  }
  return data;
}

function askForNewPassword() {
  $('login-form').hidden = true;
  $('change-form').hidden = false;
  $('current-password').value = $('password').value;
  $('new-password').focus();
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').hidden = true;
  try {
    const user = await send('POST', 'session', { username: $('username').value.trim(), password: $('password').value });
    if (user.must_change_password) askForNewPassword();
    else location.replace(nextPage());
  } catch (err) {
    showError(err.message === 'wrong username or password' ? '用户名或密码错误 (wrong username or password)' : err.message);
  }
});

$('change-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').hidden = true;
  try {
    await send('PUT', 'session/password', { current_password: $('current-password').value, new_password: $('new-password').value });
    location.replace(nextPage());
  } catch (err) {
    showError(err.message);
  }
});

if (new URLSearchParams(location.search).has('change')) {
  $('login-form').querySelector('p')?.remove();
}
