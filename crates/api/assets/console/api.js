// The console's one way to the server: the public GraphQL API at /graphql, over
// HTTP for queries and mutations and over WebSocket (graphql-transport-ws, by
// the vendored graphql-ws client) for the subscription. Every document it sends
// is one of the project's own (documents.js), so a server that runs only
// trusted documents serves the console too.

import documents from './documents.js';
import { registrationNumber } from './ui.js';

const TOKEN_KEY = 'appeals.token';

/** Who is signed in: the token (kept for this browser tab's session only) and `me`. */
export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null,
};

/** Called with a reason when the server no longer accepts the token. */
let onSignedOut = () => {};

export function whenSignedOut(handler) {
  onSignedOut = handler;
}

export function signIn(token, me) {
  session.token = token;
  session.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function signOut() {
  session.token = null;
  session.me = null;
  municipalityList = null;
  sessionStorage.removeItem(TOKEN_KEY);
  closeSocket();
}

/** An error the API answered with, by its `extensions.code`, or `NETWORK`. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Runs one of the console's documents by its operation name and returns its
 * `data`, or throws an `ApiError` with the first error's code. A token the
 * server refuses signs the person out.
 */
export async function request(operationName, variables = {}, token = session.token) {
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify({ query: documents[operationName], operationName, variables }),
    });
  } catch {
    throw new ApiError('NETWORK', '');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status === 429 ? 'RATE_LIMITED' : 'NETWORK', `HTTP ${response.status}`);
  }
  const error = body.errors?.[0];
  if (error) {
    const code = error.extensions?.code ?? 'INTERNAL';
    if (code === 'UNAUTHENTICATED' && token === session.token && session.me) {
      onSignedOut('Сеанс завершён: ваш токен больше не действует (его отозвали или он истёк). Войдите снова.');
    }
    throw new ApiError(code, error.message);
  }
  return body.data;
}

/**
 * The id of the appeal numbered as `typed` (`№ tomsk-2026-000042` as a person
 * copies it), or null when there is none in the caller's scope or `typed` is no
 * registration number; `number` is how the API spells it.
 */
export async function appealByNumber(typed) {
  const number = registrationNumber(typed);
  if (!number) return { number: typed.trim(), id: null };
  const { appealByNumber: found } = await request('AppealIdByNumber', { number });
  return { number, id: found?.id ?? null };
}

let municipalityList = null;

/** Every municipality, in Russian alphabetical order, read once a session. */
export async function municipalities() {
  municipalityList ??= request('Municipalities').then(({ municipalities: list }) =>
    [...list].sort((a, b) => a.name.localeCompare(b.name, 'ru')));
  return municipalityList.catch((error) => {
    municipalityList = null;
    throw error;
  });
}

let client = null;
const connectionListeners = new Set();

/** Hears whether the live connection is up (`true`) or lost (`false`). */
export function onConnection(listener) {
  connectionListeners.add(listener);
  return () => connectionListeners.delete(listener);
}

function socket() {
  if (client) return client;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  let everConnected = false;
  client = globalThis.graphqlWs.createClient({
    url,
    connectionParams: () => ({ Authorization: `Bearer ${session.token}` }),
    lazy: true,
    // Kept open for a moment after the last subscription ends, so that moving
    // from one page to the next does not reconnect.
    lazyCloseTimeout: 5000,
    retryAttempts: 1000,
    shouldRetry: () => session.token !== null,
    on: {
      connected: () => {
        const reconnected = everConnected;
        everConnected = true;
        for (const listener of connectionListeners) listener(true, reconnected);
      },
      closed: (event) => {
        for (const listener of connectionListeners) listener(false, false);
        // 4403 is the server refusing the socket: its user revoked or its token
        // unknown, or a limit reached (too many sockets, too many requests).
        // Asking over HTTP tells them apart: a refused token signs out there.
        if (event?.code === 4403 && session.me) request('Me').catch(() => {});
      },
    },
  });
  return client;
}

function closeSocket() {
  // Disposing of a socket that never connected rejects; there is nothing to close then.
  client?.dispose().catch(() => {});
  client = null;
}

/**
 * Hears every event in the caller's scope (or one municipality's) as it is
 * committed. Returns the function that stops listening. After a lost
 * connection comes back, `connectionListeners` hear `reconnected`, so a page
 * reloads what it shows instead of trusting what it heard before.
 */
export function subscribeToEvents(municipalityCode, onEvent) {
  const variables = municipalityCode ? { municipalityCode } : {};
  return socket().subscribe(
    { query: documents.AppealEvents, operationName: 'AppealEvents', variables },
    {
      next: (message) => {
        if (message.data?.appealEvents) onEvent(message.data.appealEvents);
        if (message.errors?.some((error) => error.extensions?.code === 'UNAUTHENTICATED')) request('Me').catch(() => {});
      },
      // The stream ends with UNAUTHENTICATED when the user is revoked; asking
      // over HTTP confirms it and signs out.
      error: (errors) => {
        if (Array.isArray(errors) && session.me) request('Me').catch(() => {});
      },
      complete: () => {},
    },
  );
}
