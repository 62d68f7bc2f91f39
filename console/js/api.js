// Calls to the gateway's own API with the signed-in token. The token lives in
// this module's memory only (no localStorage, no cookie): a reload signs out.

let token = null;

export function signIn(value) {
  token = value;
}

export function signOut() {
  token = null;
}

export function signedIn() {
  return token !== null;
}

/// A refusal from the gateway (problem+json) or a failure to reach it.
export class ApiError extends Error {
  constructor(status, detail, requestId) {
    super(detail);
    this.status = status;
    this.requestId = requestId;
  }
}

/// fetch() with the bearer header; JSON answers are parsed, refusals thrown as ApiError.
export async function call(method, path, { body, contentType } = {}) {
  const headers = { Accept: "application/json" };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (contentType) headers["Content-Type"] = contentType;
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, "The gateway could not be reached.", null);
  }
  const requestId = response.headers.get("X-Request-Id");
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const detail = payload && typeof payload.detail === "string" ? payload.detail : `HTTP ${response.status}`;
    const error = new ApiError(response.status, detail, requestId);
    error.payload = payload;
    throw error;
  }
  return payload;
}

/// What a person should read for a refusal.
export function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  switch (error.status) {
    case 0: return error.message;
    case 401: return `The gateway refused this token (${error.message}) Check that it is complete and not expired.`;
    case 403: return `This token is valid but lacks the permission for this (${error.message})`;
    case 429: return `Too many requests; wait a moment. (${error.message})`;
    default: return `${error.message} (HTTP ${error.status}${error.requestId ? `, request ${error.requestId}` : ""})`;
  }
}
