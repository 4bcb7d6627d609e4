// The JSON API as the dispatcher's console and the dashboard call it: one request helper and the
// query-string builder, so both pages report failures the same way.

/** A failed request: the server's own message (`{"error": {"message"}}`), its status, body and path. */
export class ApiError extends Error {
  constructor(message, { status = 0, body = null, path = '' } = {}) {
    super(message);
    this.status = status;
    this.body = body;
    this.path = path;
  }
}

/**
 * A request function for the API under `base`: `api(path, {method, body, signal})` sends `body` as
 * JSON and answers the parsed JSON (null for a 204). Failures become an ApiError with the server's
 * message, or `tr('error_network')` / `tr('error_http', {status})` when it gave none; an abort is
 * passed on as it is.
 */
export function jsonApi(base, tr) {
  return async function api(path, { method = 'GET', body, signal } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const where = path.split('?')[0];
    let response;
    try {
      response = await fetch(`${base}/${path}`, { method, signal, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(tr('error_network'), { path: where });
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      // A body that is not JSON (a proxy's error page, say) is reported by status below.
    }
    if (!response.ok || data === null) {
      const message = data?.error?.message ?? tr('error_http', { status: response.status });
      throw new ApiError(message, { status: response.status, body: data, path: where });
    }
    return data;
  };
}

/** `?a=1&b=x,y` from an object, leaving out empty values; commas kept as the API's lists want. */
export function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '' || value === false) continue;
    parts.push(`${key}=${String(value).split(',').map(encodeURIComponent).join(',')}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}
