/*
 * pz.js: the storefront tracker of the personalization platform. It sends Segment-spec events
 * (page, track, identify and the E-commerce Spec v2) to the collector's /v1/batch.
 *
 * Paste on every page; the stub queues the calls made before the script has loaded, replayed in order:
 *   <script>window.pz=window.pz||function(){(pz.q=pz.q||[]).push(arguments)};</script>
 *   <script src="https://HOST/static/pz/pz.js" async></script>
 *   <script>pz("init", "pzw_...", {requireConsent: true});</script>
 * Calls:
 *   pz("init", writeKey, {apiHost, anonymousId, requireConsent, autoPage})   sends a page view unless autoPage: false
 *   pz("page", [category], [name], [properties])      pz("track", "Newsletter Signed Up", {list: "weekly"})
 *   pz("identify", userId, [traits])                    the user id is remembered; pz("reset") forgets it
 *   pz("productViewed" | "productClicked" | "productAdded" | "productRemoved", product)
 *   pz("cartViewed" | "checkoutStarted", {products, currency, value})
 *   pz("orderCompleted", {order_id, revenue, currency, products})
 *   pz.flush() (a promise, never rejected), pz.anonymousId(), pz.userId()
 * A product is {product_id (the shop's SKU), name, price, quantity, category, brand, ...}; numbers given
 * as strings ("2.55") are sent as numbers. Every event has a random UUID messageId, except an Order
 * Completed: "pz-order-" + order_id, so a reloaded confirmation page is stored once by the collector.
 * apiHost defaults to where pz.js comes from. anonymousId is the shop's own (so server and browser
 * agree); without it pz.js uses localStorage.pz_anonymous_id (shared with pz-consent.js), else the
 * cookie pz_aid (when localStorage is blocked), else a new UUID v4.
 *
 * Delivery. Events wait in localStorage.pz_queue (at most 500, the oldest dropped), so a reload loses
 * nothing, and go out a second later (at once from 20 queued) in one POST {apiHost}/v1/batch of
 * {"batch", "sentAt", "writeKey"} as text/plain (no CORS preflight) with keepalive. A request's events
 * leave the stored queue while it is in flight, so another flush or tab does not send them too; they
 * go back on a network error, a 429 or a 5xx, retried after 1 s, 2 s, 4 s ... 60 s (+-20 %). A 400 (or
 * 413) refuses them for good: dropped with a console.warn, like the events a 200 lists as rejected.
 * When the page is hidden or left, the queue is handed to the browser in keepalive fetches of at most
 * 60 KB (sendBeacon if fetch cannot take one) and leaves the stored queue then: the next page does not
 * send it again.
 *
 * Consent (requireConsent: true). The analytics choice comes from pz-consent.js: its pz:consent event,
 * else pzConsent.get("analytics"), else localStorage.pz_consent. Until the visitor chooses, events wait
 * in memory (at most 100, never stored); allowed, they are queued; refused, they are dropped, like
 * everything after and whatever is still queued.
 *
 * No dependencies, no build step; nothing throws into the host page (failures end in a console.warn).
 */
(() => {
  "use strict";

  const stub = window.pz;
  if (stub && stub.loaded) return; // included twice: the first copy serves

  const VERSION = "1.0.0";
  const [QUEUE_KEY, ANONYMOUS_KEY, USER_KEY, CONSENT_KEY] = ["pz_queue", "pz_anonymous_id", "pz_user_id", "pz_consent"];
  const ANONYMOUS_COOKIE = "pz_aid";
  const MAX_QUEUED = 500;
  const MAX_WAITING = 100; // events before consent, calls before init
  const FLUSH_AT = 20;
  const FLUSH_AFTER = 1000;
  const MAX_BACKOFF = 60000;
  const MAX_EVENT_BYTES = 32 * 1024; // the collector's limit for one event
  const MAX_REQUEST_BYTES = 60 * 1024;
  const KEEPALIVE_QUOTA = 64 * 1024; // what a page may have in flight in keepalive requests, in all
  const DONE = { retry: false };
  const RETRY = { retry: true, after: 0 };

  const warn = (...args) => {
    try { console.warn("[pz]", ...args); } catch (_) { /* no console */ }
  };
  const guarded = (name, fn) => (...args) => {
    try { return fn(...args); } catch (error) { warn(`${name} failed`, error); return undefined; }
  };
  const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

  // --- storage: localStorage, or this page's memory when it is blocked --------------------------
  const storage = (() => {
    try {
      window.localStorage.setItem("pz_probe", "1");
      window.localStorage.removeItem("pz_probe");
      return window.localStorage;
    } catch (_) { return null; }
  })();
  const memory = new Map();
  const read = (key) => {
    try { return storage ? storage.getItem(key) : memory.get(key) ?? null; } catch (_) { return null; }
  };
  const write = (key, value) => {
    try {
      if (!storage) value === null ? memory.delete(key) : memory.set(key, value);
      else if (value === null) storage.removeItem(key);
      else storage.setItem(key, value);
    } catch (error) { warn(`could not write localStorage.${key}`, error); }
  };
  const cookie = (name) => {
    try {
      const match = document.cookie.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
      return match ? decodeURIComponent(match[1]) : "";
    } catch (_) { return ""; }
  };
  const setCookie = (name, value) => {
    const secure = window.location.protocol === "https:" ? "; Secure" : "";
    try { document.cookie = `${name}=${encodeURIComponent(value)}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`; } catch (_) { /* blocked */ }
  };

  const uuid4 = () => {
    const cryptoApi = window.crypto;
    if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
    // randomUUID exists only in secure contexts; getRandomValues works everywhere.
    const bytes = new Uint8Array(16);
    if (cryptoApi && cryptoApi.getRandomValues) cryptoApi.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  };
  const encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;
  const byteSize = (text) => (encoder ? encoder.encode(text).length : text.length * 3);

  // --- state ------------------------------------------------------------------------------------
  const script = document.currentScript || Array.from(document.scripts).find((s) => /\/pz\.js([?#]|$)/.test(s.src));
  const scriptOrigin = () => {
    try { return new URL(script.src, window.location.href).origin; } catch (_) { return window.location.origin; }
  };
  let config = null; // {writeKey, apiHost, requireConsent} once init has run
  const visitor = { anonymousId: "", userId: "" };
  const early = []; // calls made before init
  let waiting = []; // events made before the visitor chose (requireConsent), in memory only
  let consentChoice; // the analytics choice announced on this page (pz:consent), if any

  const rememberAnonymousId = (explicit) => {
    const id = explicit || read(ANONYMOUS_KEY) || cookie(ANONYMOUS_COOKIE) || uuid4();
    if (storage) write(ANONYMOUS_KEY, id);
    else setCookie(ANONYMOUS_COOKIE, id);
    return id;
  };

  // true, false, or undefined while the visitor has not chosen.
  const analyticsAllowed = () => {
    if (!config || !config.requireConsent) return true;
    if (typeof consentChoice === "boolean") return consentChoice;
    let value;
    try {
      const banner = window.pzConsent;
      value = banner && typeof banner.get === "function" ? banner.get("analytics") : undefined;
      if (typeof value !== "boolean") {
        const answer = JSON.parse(read(CONSENT_KEY) || "null");
        value = answer && answer.choices ? answer.choices.analytics : undefined;
      }
    } catch (_) { /* a broken answer is no answer */ }
    return typeof value === "boolean" ? value : undefined;
  };

  // --- the queue in localStorage ----------------------------------------------------------------
  const readQueue = () => {
    try {
      const events = JSON.parse(read(QUEUE_KEY) || "[]");
      return Array.isArray(events) ? events.filter((e) => isObject(e) && typeof e.messageId === "string") : [];
    } catch (_) { return []; }
  };
  const writeQueue = (events) => {
    const kept = events.length > MAX_QUEUED ? events.slice(events.length - MAX_QUEUED) : events;
    if (kept.length < events.length) warn(`the queue is full: the ${events.length - kept.length} oldest events are dropped`);
    write(QUEUE_KEY, kept.length ? JSON.stringify(kept) : null);
    return kept.length;
  };
  const enqueue = (events) => writeQueue(readQueue().concat(events));
  // The events of a failed request go back in front: they are the oldest.
  const putBack = (events) => {
    const ids = new Set(events.map((e) => e.messageId));
    writeQueue(events.concat(readQueue().filter((e) => !ids.has(e.messageId))));
  };
  // Takes from the front of the queue what one request carries (at most 60 KB).
  const take = () => {
    const queue = readQueue();
    let size = 200 + byteSize(config.writeKey); // the body's own fields
    let count = 0;
    for (; count < queue.length; count++) {
      const next = byteSize(JSON.stringify(queue[count])) + 1;
      if (count && size + next > MAX_REQUEST_BYTES) break;
      size += next;
    }
    if (count) writeQueue(queue.slice(count));
    return queue.slice(0, count);
  };

  // --- sending ----------------------------------------------------------------------------------
  let keepaliveBytes = 0; // bodies of this page's keepalive requests in flight
  let leaving = false; // between pagehide and pageshow
  let timer = null;
  let failures = 0;
  let retryAt = 0;
  let chain = Promise.resolve();

  const endpoint = () => `${config.apiHost}/v1/batch`;
  const bodyOf = (events) => JSON.stringify({ batch: events, sentAt: new Date().toISOString(), writeKey: config.writeKey });
  const jsonOf = (response) => response.json().catch(() => null);

  const answered = async (response) => {
    if (response.ok) {
      const body = await jsonOf(response);
      const rejected = body && Array.isArray(body.rejected) ? body.rejected : [];
      if (rejected.length) warn(`the collector rejected ${rejected.length} event(s); they are not sent again`, rejected);
      return DONE;
    }
    if (response.status === 400 || response.status === 413) {
      warn(`the collector refused a batch (HTTP ${response.status}); its events are dropped`, await jsonOf(response));
      return DONE;
    }
    const after = Number(response.headers.get("Retry-After"));
    return { retry: true, after: after > 0 ? after * 1000 : 0 };
  };

  // Starts one POST (throws if fetch cannot); resolves to DONE or a retry, never rejects.
  const send = (body, keepalive) => {
    const size = byteSize(body);
    const options = { method: "POST", headers: { "Content-Type": "text/plain" }, body, keepalive, credentials: "omit" };
    const request = window.fetch(endpoint(), options);
    if (keepalive) keepaliveBytes += size;
    return request
      .then(answered, (error) => {
        // A page being left sees its keepalive requests fail while the browser still delivers them:
        // putting their events back would send them again from the next page.
        if (keepalive && leaving) return DONE;
        warn("could not reach the collector; the events are kept", error);
        return RETRY;
      })
      .catch(() => RETRY)
      .then((outcome) => {
        if (keepalive) keepaliveBytes -= size;
        return outcome;
      });
  };
  const beacon = (body) => {
    try {
      return Boolean(navigator.sendBeacon && navigator.sendBeacon(endpoint(), new Blob([body], { type: "text/plain" })));
    } catch (_) { return false; }
  };
  const post = (events) => {
    const body = bodyOf(events);
    if (typeof window.fetch !== "function") return Promise.resolve(beacon(body) ? DONE : RETRY);
    try { return send(body, keepaliveBytes + byteSize(body) <= KEEPALIVE_QUOTA); } catch (error) {
      warn("could not send the events", error);
      return Promise.resolve(RETRY);
    }
  };

  const schedule = (delay) => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      if (Date.now() < retryAt) schedule(retryAt - Date.now());
      else flush();
    }, delay);
  };

  // Sends the queue, one request at a time, until it is empty or a request fails.
  const drain = async () => {
    while (config && analyticsAllowed() === true) {
      const events = take();
      if (!events.length) return;
      const outcome = await post(events);
      if (!outcome.retry) {
        [failures, retryAt] = [0, 0];
        continue;
      }
      if (analyticsAllowed() !== true) return; // refused meanwhile: they are not kept
      putBack(events);
      failures += 1;
      const backoff = Math.min(MAX_BACKOFF, 1000 * 2 ** (failures - 1) * (0.8 + Math.random() * 0.4));
      const delay = Math.max(backoff, outcome.after);
      retryAt = Date.now() + delay;
      clearTimeout(timer);
      timer = null;
      schedule(delay);
      return;
    }
  };
  const flush = () => {
    chain = chain.then(drain).catch((error) => warn("could not flush", error));
    return chain;
  };

  // The page is hidden or left: the browser finishes these requests even after the page is gone.
  // The events leave the queue as they are handed over, so the next page does not send them again.
  const handOver = (events) => {
    const body = bodyOf(events);
    if (typeof window.fetch === "function" && keepaliveBytes + byteSize(body) <= KEEPALIVE_QUOTA) {
      try {
        send(body, true).then((outcome) => {
          if (!outcome.retry || analyticsAllowed() !== true) return;
          putBack(events); // the page lives on (a hidden tab) and the collector said "later"
          schedule(FLUSH_AFTER);
        });
        return true;
      } catch (_) { /* keepalive unsupported: try a beacon */ }
    }
    return beacon(body);
  };
  const sendAtUnload = () => {
    if (!config || analyticsAllowed() !== true) return;
    for (let events = take(); events.length; events = take()) {
      if (!handOver(events)) {
        putBack(events); // the browser would not take them: the next page sends them
        return;
      }
    }
  };

  // --- events -----------------------------------------------------------------------------------
  const pageFacts = () => {
    const { location } = window;
    const url = location.href.split("#")[0];
    return { path: location.pathname, referrer: document.referrer, search: location.search, title: document.title, url };
  };
  const context = () => {
    const facts = { page: pageFacts(), library: { name: "pz.js", version: VERSION }, locale: navigator.language };
    try { facts.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (_) { /* no Intl */ }
    if (window.screen) facts.screen = { width: screen.width, height: screen.height, density: window.devicePixelRatio };
    facts.userAgent = navigator.userAgent;
    return facts;
  };

  const record = (fields) => {
    const event = Object.assign({ messageId: uuid4(), anonymousId: visitor.anonymousId }, fields);
    if (visitor.userId) event.userId = visitor.userId;
    event.timestamp = new Date().toISOString();
    event.context = context();
    const json = JSON.stringify(event); // a copy: the page may change its objects later
    if (byteSize(json) > MAX_EVENT_BYTES) return warn(`"${event.event || event.type}" is over 32 KB and is not sent`);
    const allowed = analyticsAllowed();
    if (allowed === false) return undefined;
    if (allowed === undefined) {
      if (waiting.push(JSON.parse(json)) > MAX_WAITING) waiting.shift();
    } else if (enqueue([JSON.parse(json)]) >= FLUSH_AT && Date.now() >= retryAt) flush();
    else schedule(FLUSH_AFTER);
    return undefined;
  };

  const consentChanged = () => {
    const allowed = analyticsAllowed();
    if (allowed === undefined) return;
    const events = waiting;
    waiting = [];
    if (allowed === false) writeQueue([]);
    else if (enqueue(events)) flush();
  };

  const page = (...args) => {
    // page(), page(name), page(properties), page(name, properties), page(category, name, properties)
    const names = args.filter((arg) => typeof arg === "string");
    const properties = Object.assign(pageFacts(), args.find(isObject));
    const [category, name] = names.length > 1 ? names : [undefined, names[0]];
    const fields = { type: "page", properties };
    if (name) fields.name = properties.name = name;
    if (category) fields.category = properties.category = category;
    record(fields);
  };

  const track = (event, properties, messageId) => {
    if (typeof event !== "string" || !event) return warn("track needs the name of the event");
    const fields = { type: "track", event, properties: isObject(properties) ? properties : {} };
    if (messageId) fields.messageId = messageId;
    return record(fields);
  };

  const identify = (userId, traits) => {
    if (isObject(userId)) [userId, traits] = [undefined, userId];
    if ((typeof userId === "string" && userId) || typeof userId === "number") {
      visitor.userId = String(userId);
      write(USER_KEY, visitor.userId);
    }
    record({ type: "identify", traits: isObject(traits) ? traits : {} });
  };
  const reset = () => {
    visitor.userId = "";
    write(USER_KEY, null);
  };

  // --- the E-commerce Spec v2 -------------------------------------------------------------------
  const NUMBERS = ["price", "quantity", "position", "revenue", "total", "subtotal", "value", "tax", "shipping", "discount"];
  const numeric = (value) => (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)) ? Number(value) : value);
  const product = (input) => {
    const properties = Object.assign({}, isObject(input) ? input : {});
    for (const key of NUMBERS) if (key in properties) properties[key] = numeric(properties[key]);
    return properties;
  };
  const productList = (input) => {
    const properties = product(input);
    if (Array.isArray(properties.products)) properties.products = properties.products.map(product);
    return properties;
  };
  const orderMessageId = ({ order_id: id }) => {
    const messageId = id === undefined || id === null || id === "" ? "" : `pz-order-${id}`;
    return messageId.length <= 100 ? messageId : ""; // the collector's limit
  };
  const ECOMMERCE = {
    productViewed: ["Product Viewed", product],
    productClicked: ["Product Clicked", product],
    productAdded: ["Product Added", product],
    productRemoved: ["Product Removed", product],
    cartViewed: ["Cart Viewed", productList],
    checkoutStarted: ["Checkout Started", productList],
    orderCompleted: ["Order Completed", productList],
  };

  // --- init and the public function -------------------------------------------------------------
  const listen = () => {
    document.addEventListener("pz:consent", guarded("pz:consent", (event) => {
      const choices = event.detail && event.detail.choices;
      if (choices && typeof choices.analytics === "boolean") consentChoice = choices.analytics;
      consentChanged();
    }));
    window.addEventListener("storage", guarded("storage", (event) => {
      if (event.key !== CONSENT_KEY) return;
      consentChoice = undefined; // chosen in another tab: read it again
      consentChanged();
    }));
    window.addEventListener("pagehide", guarded("pagehide", () => {
      leaving = true;
      sendAtUnload();
    }));
    window.addEventListener("pageshow", () => { leaving = false; }); // back from the back-forward cache
    document.addEventListener("visibilitychange", guarded("visibilitychange", () => {
      if (document.visibilityState === "hidden") sendAtUnload();
      else if (readQueue().length) schedule(FLUSH_AFTER);
    }));
  };

  const init = (writeKey, options) => {
    if (config) return warn("init was called again: the first call stands");
    if (typeof writeKey !== "string" || !writeKey) return warn("init needs the source's write key (pzw_...)");
    const o = isObject(options) ? options : {};
    const apiHost = typeof o.apiHost === "string" && o.apiHost ? o.apiHost : scriptOrigin();
    config = { writeKey, apiHost: apiHost.replace(/\/+$/, ""), requireConsent: o.requireConsent === true };
    const explicit = typeof o.anonymousId === "string" || typeof o.anonymousId === "number" ? String(o.anonymousId) : "";
    visitor.anonymousId = rememberAnonymousId(explicit);
    visitor.userId = read(USER_KEY) || "";
    listen();
    if (analyticsAllowed() === false) writeQueue([]);
    else if (readQueue().length) schedule(FLUSH_AFTER); // left by an earlier page
    if (o.autoPage !== false) page();
    for (const args of early.splice(0)) call(args);
    return undefined;
  };

  const methods = { init, page, track: (event, properties) => track(event, properties), identify, reset };
  for (const [method, [event, shape]] of Object.entries(ECOMMERCE)) {
    methods[method] = (input) => {
      const properties = shape(input);
      track(event, properties, method === "orderCompleted" ? orderMessageId(properties) : "");
    };
  }

  const call = guarded("pz", (args) => {
    const [name, ...rest] = args;
    if (name !== "init" && !config) {
      if (early.length < MAX_WAITING) early.push(args);
    } else if (Object.prototype.hasOwnProperty.call(methods, name)) {
      methods[name](...rest);
    } else {
      warn(`unknown call pz(${JSON.stringify(name)})`);
    }
  });

  const pz = (...args) => void call(args);
  pz.flush = () => flush(); // resolves once what was queued has been sent (or has failed and waits)
  pz.anonymousId = guarded("anonymousId", () => visitor.anonymousId || read(ANONYMOUS_KEY) || cookie(ANONYMOUS_COOKIE) || null);
  pz.userId = () => visitor.userId || null;
  pz.version = VERSION;
  pz.loaded = true;

  const queued = stub && Array.isArray(stub.q) ? stub.q : [];
  window.pz = pz;
  for (const args of queued) call(Array.from(args));
})();
