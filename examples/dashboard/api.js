// The Kubernetes API as the dashboard uses it, through kproxy: requests whose errors
// carry the API's own Status message, and collections kept live by list + watch.
//
// A watch is read as a stream of JSON lines (?watch=1&resourceVersion=RV). The
// collection is listed again when the server says the version is gone (410, an ERROR
// event or the request's own status) and whenever the stream ends or drops; failures
// are reported and retried with a growing pause (1 s, doubling, at most 30 s).

export class ApiError extends Error {
  constructor(status, reason, message, url) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the request did not get an answer at all
    this.reason = reason;
    this.url = url;
  }

  // One line for people: "403 Forbidden: <the Status message>".
  describe() {
    if (this.status === 0) return this.message;
    return `${this.status}${this.reason ? " " + this.reason : ""}: ${this.message}`;
  }
}

// GET `path` (relative to the API base); resolves to the Response when it is a 2xx.
export async function request(base, path, { signal, accept = "application/json" } = {}) {
  const url = new URL(path, base);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: accept }, cache: "no-store", signal });
  } catch (error) {
    if (signal && signal.aborted) throw error;
    // A network failure, or (for a page on another origin) no CORS grant: the browser
    // says no more than that to scripts.
    throw new ApiError(0, "", `no answer from ${url.origin} (${error.message}); is kproxy running, and does it allow this page's origin?`, url);
  }
  if (!response.ok) throw await statusError(response, url);
  return response;
}

async function statusError(response, url) {
  let text = "";
  try {
    text = await response.text();
  } catch (error) {
    text = "";
  }
  let message = text.trim() || response.statusText || "request failed";
  let reason = "";
  try {
    const status = JSON.parse(text);
    if (status && status.kind === "Status") {
      message = status.message || message;
      reason = status.reason || "";
    }
  } catch (error) {
    // Not JSON: kubectl's plain "Forbidden" or Go's text errors, shown as they are.
  }
  return new ApiError(response.status, reason, message, url);
}

export async function getJSON(base, path, options) {
  const response = await request(base, path, options);
  return response.json();
}

const PAGE = 500;
const MAX_PAUSE = 30000;

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

// A collection (e.g. "api/v1/pods") kept live. `onChange(items)` gets the Map of
// "namespace/name" → object after every change; `onState(state, detail)` gets
// "listing", "live", "relisting" (detail: why) or "error" (detail: an ApiError).
export class Collection {
  constructor(base, path, { onChange, onState }) {
    this.base = base;
    this.path = path;
    this.items = new Map();
    this.resourceVersion = "";
    this.onChange = onChange;
    this.onState = onState;
  }

  async run(signal) {
    let wait = 1000;
    while (!signal.aborted) {
      try {
        this.onState("listing");
        await this.list(signal);
        this.onState("live");
        const started = Date.now();
        const why = await this.watch(signal);
        if (signal.aborted) return;
        this.onState("relisting", why);
        // A stream that ends at once again and again must not become a busy loop.
        if (Date.now() - started < 1000) await pause(wait, signal);
        wait = 1000;
      } catch (error) {
        if (signal.aborted) return;
        this.onState("error", error instanceof ApiError ? error : new ApiError(0, "", String(error.message || error), this.path));
        await pause(wait, signal);
        wait = Math.min(wait * 2, MAX_PAUSE);
      }
    }
  }

  async list(signal) {
    const items = new Map();
    let next = "";
    let version = "";
    do {
      const query = `?limit=${PAGE}` + (next ? `&continue=${encodeURIComponent(next)}` : "");
      const page = await getJSON(this.base, this.path + query, { signal });
      for (const item of page.items || []) items.set(key(item), item);
      next = (page.metadata && page.metadata.continue) || "";
      version = (page.metadata && page.metadata.resourceVersion) || version;
    } while (next);
    this.items = items;
    this.resourceVersion = version;
    this.onChange(this.items);
  }

  // Follows the watch until it ends; resolves to why the collection must be listed again.
  async watch(signal) {
    const query = `?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(this.resourceVersion)}`;
    let response;
    try {
      response = await request(this.base, this.path + query, { signal });
    } catch (error) {
      if (error instanceof ApiError && error.status === 410) return "410 Gone: the resource version is too old";
      throw error;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        let chunk;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (signal.aborted) return "stopped";
          throw new ApiError(0, "", `the watch of ${this.path} dropped (${error.message})`, this.path);
        }
        if (chunk.done) return "the watch stream ended";
        buffer += chunk.value;
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).trim();
          buffer = buffer.slice(end + 1);
          if (line) {
            const gone = this.apply(JSON.parse(line));
            if (gone) return gone;
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  // One watch event; returns why to list again (410), or nothing.
  apply(event) {
    const object = event.object || {};
    if (event.type === "ERROR") {
      if (object.code === 410) return `410 Gone: ${object.message || "the resource version is too old"}`;
      throw new ApiError(object.code || 500, object.reason || "", object.message || "the watch failed", this.path);
    }
    const version = object.metadata && object.metadata.resourceVersion;
    if (version) this.resourceVersion = version;
    if (event.type === "BOOKMARK") return "";
    if (event.type === "DELETED") this.items.delete(key(object));
    else this.items.set(key(object), object); // ADDED, MODIFIED
    this.onChange(this.items);
    return "";
  }
}

export function key(object) {
  const meta = object.metadata || {};
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}
