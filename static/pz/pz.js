/*
 * pz.js: the storefront tracker of the personalization platform. It sends Segment-spec events
 * (page, track, identify and the E-commerce Spec v2) to the collector's /v1/batch.
 *
 * Paste on every page; the stub queues the calls made before the script has loaded, replayed in order:
 *   <script>window.pz=window.pz||function(){(pz.q=pz.q||[]).push(arguments)};</script>
 *   <script src="https://HOST/static/pz/pz.js" async></script>
 *   <script>pz("init", "pzw_...", {requireConsent: true});</script>
 * Calls:
 *   pz("init", writeKey, {apiHost, anonymousId, userId, userToken, requireConsent, autoPage, widgets})
 *                                                     sends a page view unless autoPage: false
 *   pz("page", [category], [name], [properties])      pz("track", "Newsletter Signed Up", {list: "weekly"})
 *   pz("identify", userId, [traits])                    the user id is remembered; pz("reset") forgets it
 * The collector counts an event's userId only with proof: each event of init's userId carries init's
 * userToken (context.pz.userToken); without it, the event is recorded as the anonymous visitor's only.
 *   pz("productViewed" | "productClicked" | "productAdded" | "productRemoved", product)
 *   pz("cartViewed" | "checkoutStarted", {products, currency, value})
 *   pz("orderCompleted", {order_id, revenue, currency, products})
 *   pz("widgets")                                      renders the recommendation slots added since (see Widgets)
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
 * Widgets. Every <div data-pz-placement="home"> (optional data-pz-product, data-pz-category,
 * data-pz-limit, data-pz-country, data-pz-title, data-pz-timeout, data-pz-product-url) becomes a carousel
 * of GET {apiHost}/api/v1/recommendations, asked for the visitor's anonymous id, and for init's userId
 * (the signed-in customer, remembered as identify does, without an identify event) only with init's
 * userToken (HMAC-SHA256 of the user id, keyed with the hex SHA-256 of the source's secret key: the
 * shop's server computes it). A <template> inside the slot is the markup of one item:
 * data-pz-field="name|price|url|image|initial|product_id" marks where each value goes, as text
 * (textContent) or a checked http(s) URL; without one a built-in item is used. Styled by
 * --pz-* CSS variables (rules of zero specificity, so the shop's own CSS wins). The slot says how it went
 * in data-pz-state (loading, rendered, empty, failed) and fires pz:widget; on an error, a non-200 or no
 * answer within the timeout (widgets.timeout, 1500 ms) it stays empty. Impressions (Product List Viewed)
 * are sent once a carousel has been half visible for a second; a click on an item sends Product Clicked
 * with its rec_id and position through the queue, which the page hands over as it is left.
 * init's widgets: {timeout, productUrl: "/p/{product_id}/" (the link of an item the catalog has no URL
 * for), labels: {title, previous, next}}, or false for none.
 *
 * No dependencies, no build step; nothing throws into the host page (failures end in a console.warn).
 */
(() => {
  "use strict";

  // Under a Content-Security-Policy that allows <style> only with a nonce, the page gives this script's
  // tag the nonce; the stylesheet added below carries it too. Read now: currentScript is null later.
  const STYLE_NONCE = (document.currentScript && document.currentScript.nonce) || "";

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
    // A refused key or origin (401, 403) is refused again on every retry, as a bad batch is.
    if ([400, 401, 403, 413].includes(response.status)) {
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
    // The collector counts a user id only with its proof; without it the event is the anonymous visitor's.
    if (proof && event.userId === proof.userId) event.context.pz = { userToken: proof.userToken };
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
    proof = null;
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

  // --- widgets: recommendation carousels in [data-pz-placement] slots ---------------------------
  const WIDGET_TIMEOUT = 1500;
  const IMPRESSION_AFTER = 1000; // ms at least half visible
  const SLOT = "[data-pz-placement]";
  const LABELS = { title: "Recommended for you", previous: "Previous products", next: "Next products" };
  // Every rule is inside :where(), of zero specificity: any rule of the shop's wins.
  const WIDGET_CSS = `
:where([data-pz-placement]){display:block;min-height:var(--pz-min-height,20rem)}
:where(.pz-widget){margin:var(--pz-margin,1.5rem 0);font:var(--pz-font,inherit);color:var(--pz-color,inherit);background:var(--pz-background,transparent)}
:where(.pz-header){display:flex;align-items:center;gap:.5rem;margin:0 0 .75rem}
:where(.pz-title){flex:1;margin:0;font-size:var(--pz-title-size,1.25rem);line-height:1.3}
:where(.pz-nav){flex:none;width:2.5rem;height:2.5rem;padding:0;border-radius:50%;border:var(--pz-item-border,1px solid #d5d8de);background:var(--pz-item-background,#fff);color:var(--pz-color,inherit);font:inherit;font-size:1.5rem;line-height:1;cursor:pointer}
:where(.pz-nav:disabled){opacity:.35;cursor:default}
:where(.pz-nav[hidden]){display:none}
:where(.pz-track){display:flex;gap:var(--pz-gap,1rem);margin:0;padding:.25rem .25rem .75rem;scroll-padding:0 .25rem;list-style:none;overflow-x:auto;overscroll-behavior-x:contain;scroll-snap-type:x mandatory;scrollbar-width:thin}
:where(.pz-item){flex:0 0 var(--pz-item-width,11rem);min-width:0;scroll-snap-align:start}
:where(.pz-item-link){display:flex;flex-direction:column;gap:.4rem;box-sizing:border-box;height:100%;padding:var(--pz-item-padding,.75rem);background:var(--pz-item-background,#fff);border:var(--pz-item-border,1px solid #e3e5ea);border-radius:var(--pz-radius,10px);color:inherit;text-decoration:none}
:where(.pz-item-media){display:block;aspect-ratio:var(--pz-image-ratio,1);overflow:hidden;border-radius:calc(var(--pz-radius,10px) * .8);background:hsl(var(--pz-hue,210) 60% 90%)}
:where(.pz-item-media img){display:block;width:100%;height:100%;object-fit:cover}
:where(.pz-item-placeholder){display:grid;place-items:center;height:100%;font-size:2.5rem;font-weight:700;color:hsl(var(--pz-hue,210) 45% 35%)}
:where(.pz-item:not([data-pz-image=none]) .pz-item-placeholder){display:none}
:where(.pz-item-name){display:-webkit-box;overflow:hidden;-webkit-line-clamp:2;-webkit-box-orient:vertical;font-size:.95rem}
:where(.pz-item-price){font-weight:650;color:var(--pz-price-color,inherit)}
:where(.pz-widget :focus-visible){outline:3px solid var(--pz-accent,#1f5fbf);outline-offset:2px}
@media (prefers-reduced-motion:no-preference){:where(.pz-track){scroll-behavior:smooth}}
`;
  let proof = null; // {userId, userToken} from init: widgets ask in that user's name only with it
  let widgetCount = 0;

  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  // Only http(s) URLs, absolute or relative to the page; javascript:, data: and the like are dropped.
  const safeUrl = (raw) => {
    if (typeof raw !== "string" || !raw.trim()) return "";
    try {
      const url = new URL(raw, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : "";
    } catch (_) { return ""; }
  };
  const finite = (value) => {
    const number = numeric(value);
    return typeof number === "number" && Number.isFinite(number) ? number : undefined;
  };
  const hue = (text) => {
    let hash = 0;
    for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) >>> 0;
    return hash % 360;
  };
  const formatPrice = (price, currency) => {
    if (price === undefined) return "";
    const locale = document.documentElement.lang || navigator.language || "en";
    try {
      const options = currency ? { style: "currency", currency } : { minimumFractionDigits: 2, maximumFractionDigits: 2 };
      return new Intl.NumberFormat(locale, options).format(price);
    } catch (_) { return currency ? `${price.toFixed(2)} ${currency}` : price.toFixed(2); }
  };

  // One item of the API's answer, checked; null when it cannot be shown.
  const recommendedItem = (raw, index) => {
    if (!isObject(raw)) return null;
    const id = typeof raw.product_id === "number" ? String(raw.product_id) : raw.product_id;
    if (typeof id !== "string" || !id) return null;
    const text = (value) => (typeof value === "string" ? value : "");
    return {
      product_id: id,
      name: text(raw.name),
      price: finite(raw.price),
      currency: /^[A-Za-z]{3}$/.test(text(raw.currency)) ? raw.currency.toUpperCase() : "",
      position: Number.isInteger(raw.position) && raw.position > 0 ? raw.position : index + 1,
      url: text(raw.url),
      image: safeUrl(raw.image_url),
    };
  };
  // The catalog's URL of the product; without one (or a bad one), the shop's pattern with the SKU in it.
  const itemLink = (item, pattern) =>
    safeUrl(item.url) || (pattern ? safeUrl(pattern.split("{product_id}").join(encodeURIComponent(item.product_id))) : "");
  // What the events say of an item (the E-commerce Spec's product).
  const eventProduct = (item) => {
    const fields = { product_id: item.product_id, name: item.name, position: item.position };
    if (item.price !== undefined) fields.price = item.price;
    return fields;
  };

  const slotSettings = (slot) => {
    const data = slot.dataset;
    const timeout = Number(data.pzTimeout);
    return {
      placement: (data.pzPlacement || "").trim(),
      timeout: timeout > 0 ? timeout : config.widgets.timeout,
      productUrl: data.pzProductUrl || config.widgets.productUrl,
      title: data.pzTitle, // undefined: the campaign's name; "": no visible heading
    };
  };
  const recommendationsUrl = (slot, placement) => {
    const data = slot.dataset;
    const query = new URLSearchParams({ placement, writeKey: config.writeKey, anonymousId: visitor.anonymousId });
    if (proof && visitor.userId && proof.userId === visitor.userId) {
      query.set("userId", proof.userId);
      query.set("userToken", proof.userToken);
    }
    const optional = { product: data.pzProduct, category: data.pzCategory, limit: data.pzLimit, country: data.pzCountry };
    for (const [name, value] of Object.entries(optional)) if (value) query.set(name, value);
    return `${config.apiHost}/api/v1/recommendations?${query}`;
  };
  // The answer, or a rejection on a network error, a non-200 or no answer within `timeout` ms.
  const fetchRecommendations = (url, timeout) => {
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    let timer = null;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => {
        if (controller) controller.abort();
        reject(new Error(`no answer within ${timeout} ms`));
      }, timeout);
    });
    const answer = Promise.resolve()
      // no-store: each page view is an answer (and an exposure) of its own, even when the API lets
      // caches share a non-personalized one; the browser's cache would show the last page's again.
      .then(() => window.fetch(url, { credentials: "omit", cache: "no-store", signal: controller ? controller.signal : undefined }))
      .then((response) => {
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return response.json();
      });
    return Promise.race([answer, expired]).finally(() => clearTimeout(timer));
  };

  // The built-in markup of one item, the same shape a shop's <template> may have.
  const builtInItem = () => {
    const link = element("a", "pz-item-link");
    link.dataset.pzField = "url";
    const media = element("span", "pz-item-media");
    media.setAttribute("aria-hidden", "true");
    const image = element("img");
    Object.assign(image, { alt: "", loading: "lazy", decoding: "async" });
    image.dataset.pzField = "image";
    const placeholder = element("span", "pz-item-placeholder");
    placeholder.dataset.pzField = "initial";
    media.append(image, placeholder);
    const name = element("span", "pz-item-name");
    name.dataset.pzField = "name";
    const price = element("span", "pz-item-price");
    price.dataset.pzField = "price";
    link.append(media, name, price);
    return link;
  };
  // Puts an item's values into its markup: text as text, URLs checked, an image without a URL removed.
  const fill = (root, item, link) => {
    for (const node of Array.from(root.querySelectorAll("[data-pz-field]"))) {
      const field = node.getAttribute("data-pz-field");
      if (field === "name") node.textContent = item.name;
      else if (field === "price") node.textContent = formatPrice(item.price, item.currency);
      else if (field === "product_id") node.textContent = item.product_id;
      else if (field === "initial") node.textContent = Array.from(item.name.trim())[0] || "";
      else if (field === "url") {
        if (link) node.setAttribute("href", link);
        else node.removeAttribute("href");
      } else if (field === "image") {
        if (item.image) node.setAttribute("src", item.image);
        else node.remove();
      }
    }
  };

  const buildWidget = (slot, settings, answer, items) => {
    const n = ++widgetCount;
    const labels = config.widgets.labels;
    const campaign = isObject(answer.campaign) && typeof answer.campaign.name === "string" ? answer.campaign.name : "";
    const label = settings.title || campaign || labels.title;
    const section = element("section", "pz-widget");
    section.setAttribute("aria-roledescription", "carousel");
    section.dataset.pzRecId = answer.rec_id;
    if (typeof answer.strategy === "string") section.dataset.pzStrategy = answer.strategy;
    const header = element("div", "pz-header");
    if (settings.title !== "") {
      const heading = element("h2", "pz-title", label);
      heading.id = `pz-widget-${n}-title`;
      section.setAttribute("aria-labelledby", heading.id);
      header.append(heading);
    } else section.setAttribute("aria-label", label);

    const list = element("ul", "pz-track");
    list.id = `pz-widget-${n}-items`;
    list.setAttribute("role", "list"); // list-style: none drops the list role in some screen readers
    list.setAttribute("aria-label", label);
    list.tabIndex = 0; // the arrow keys scroll it
    const navButton = (className, text, glyph) => {
      const button = element("button", `pz-nav ${className}`);
      button.type = "button";
      button.setAttribute("aria-label", text);
      button.setAttribute("aria-controls", list.id);
      const mark = element("span", "", glyph);
      mark.setAttribute("aria-hidden", "true");
      button.append(mark);
      return button;
    };
    const previous = navButton("pz-previous", labels.previous, "\u2039");
    const next = navButton("pz-next", labels.next, "\u203a");
    header.append(previous, next);

    const template = Array.from(slot.children).find((child) => child instanceof HTMLTemplateElement);
    const itemOf = new Map();
    for (const item of items) {
      const row = element("li", "pz-item");
      row.dataset.pzPosition = String(item.position);
      row.dataset.pzProductId = item.product_id;
      row.style.setProperty("--pz-hue", String(hue(item.product_id)));
      if (!item.image) row.dataset.pzImage = "none";
      row.append(template ? document.importNode(template.content, true) : builtInItem());
      fill(row, item, itemLink(item, settings.productUrl));
      itemOf.set(row, item);
      list.append(row);
    }
    section.append(header, list);

    // Previous / next scroll by most of a view; they are hidden when everything fits.
    const direction = () => (getComputedStyle(list).direction === "rtl" ? -1 : 1);
    const update = guarded("widget", () => {
      const end = list.scrollWidth - list.clientWidth;
      const at = Math.abs(list.scrollLeft);
      previous.hidden = next.hidden = end <= 1;
      previous.disabled = at <= 1;
      next.disabled = at >= end - 1;
    });
    let frame = 0;
    const soon = () => {
      if (!frame) frame = requestAnimationFrame(() => { frame = 0; update(); });
    };
    previous.addEventListener("click", guarded("widget", () => list.scrollBy({ left: -direction() * list.clientWidth * 0.9 })));
    next.addEventListener("click", guarded("widget", () => list.scrollBy({ left: direction() * list.clientWidth * 0.9 })));
    list.addEventListener("scroll", soon, { passive: true });

    // A click on a link or button of an item: Product Clicked, once per item, queued before the page is left.
    const clicked = new Set();
    const onClick = guarded("widget click", (event) => {
      if (event.type === "auxclick" && event.button !== 1) return;
      const target = event.target instanceof Element ? event.target.closest("a[href], button") : null;
      const row = target && target.closest("li.pz-item");
      const item = row && itemOf.get(row);
      if (!item || clicked.has(item)) return;
      clicked.add(item);
      const properties = Object.assign(eventProduct(item), { rec_id: answer.rec_id, list_id: settings.placement });
      if (item.currency) properties.currency = item.currency;
      track("Product Clicked", product(properties));
    });
    list.addEventListener("click", onClick);
    list.addEventListener("auxclick", onClick);

    // Shown: Product List Viewed, once, after a second of being at least half visible on a visible page.
    const watch = () => {
      if (typeof IntersectionObserver !== "function") return;
      let visible = false;
      let timer = null;
      const currency = items.find((item) => item.currency);
      const impression = () => {
        timer = null;
        stopWatching();
        const properties = { rec_id: answer.rec_id, list_id: settings.placement, products: items.map(eventProduct) };
        if (currency) properties.currency = currency.currency;
        track("Product List Viewed", productList(properties));
      };
      const arm = () => {
        if (visible && document.visibilityState === "visible") {
          if (timer === null) timer = setTimeout(guarded("widget impression", impression), IMPRESSION_AFTER);
        } else if (timer !== null) {
          clearTimeout(timer);
          timer = null;
        }
      };
      const observer = new IntersectionObserver(guarded("widget", (entries) => {
        for (const entry of entries) visible = entry.isIntersecting && entry.intersectionRatio >= 0.5;
        arm();
      }), { threshold: [0, 0.5, 1] });
      const onVisibility = guarded("widget", arm);
      const stopWatching = () => {
        observer.disconnect();
        document.removeEventListener("visibilitychange", onVisibility);
      };
      document.addEventListener("visibilitychange", onVisibility);
      observer.observe(section);
    };
    const start = () => {
      update();
      if (typeof ResizeObserver === "function") new ResizeObserver(soon).observe(list);
      watch();
    };
    return { section, start };
  };

  const renderSlot = async (slot) => {
    const settings = slotSettings(slot);
    if (!settings.placement) return;
    slot.setAttribute("data-pz-state", "loading");
    slot.setAttribute("aria-busy", "true");
    let state = "failed";
    let answer = null;
    try {
      answer = await fetchRecommendations(recommendationsUrl(slot, settings.placement), settings.timeout);
      if (!isObject(answer) || typeof answer.rec_id !== "string" || !Array.isArray(answer.items)) {
        throw new Error("the answer is not a list of recommendations");
      }
      const items = answer.items.map(recommendedItem).filter(Boolean);
      state = "empty";
      if (items.length) {
        const widget = buildWidget(slot, settings, answer, items); // built whole before it is shown
        slot.append(widget.section);
        state = "rendered";
        widget.start();
      }
    } catch (error) {
      for (const node of Array.from(slot.querySelectorAll(":scope > .pz-widget"))) node.remove();
      warn(`the "${settings.placement}" widget stays empty`, error);
    }
    slot.setAttribute("data-pz-state", state);
    slot.removeAttribute("aria-busy");
    const detail = { state, placement: settings.placement, rec_id: state === "rendered" ? answer.rec_id : null };
    slot.dispatchEvent(new CustomEvent("pz:widget", { bubbles: true, detail }));
  };

  // Renders every slot not rendered yet (after init, and on pz("widgets") for slots added later).
  const renderWidgets = () => {
    if (!config || !config.widgets) return;
    if (!document.querySelector("style[data-pz-widgets]")) {
      const style = element("style", "", WIDGET_CSS);
      style.setAttribute("data-pz-widgets", "");
      if (STYLE_NONCE) style.nonce = STYLE_NONCE;
      (document.head || document.documentElement).prepend(style);
    }
    for (const slot of Array.from(document.querySelectorAll(SLOT))) {
      if (!slot.hasAttribute("data-pz-state")) renderSlot(slot).catch((error) => warn("a widget failed", error));
    }
  };
  const widgetsWhenReady = () => {
    const run = guarded("widgets", renderWidgets);
    // After the calls queued with init have run (identify …), and once the slots are parsed.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run, { once: true });
    else setTimeout(run, 0);
  };
  const widgetsOptions = (option) => {
    if (option === false) return null;
    const o = isObject(option) ? option : {};
    const labels = Object.assign({}, LABELS);
    if (isObject(o.labels)) for (const key of Object.keys(LABELS)) if (typeof o.labels[key] === "string" && o.labels[key]) labels[key] = o.labels[key];
    return {
      timeout: typeof o.timeout === "number" && o.timeout > 0 ? o.timeout : WIDGET_TIMEOUT,
      productUrl: typeof o.productUrl === "string" ? o.productUrl : "",
      labels,
    };
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
    config = {
      writeKey,
      apiHost: apiHost.replace(/\/+$/, ""),
      requireConsent: o.requireConsent === true,
      widgets: widgetsOptions(o.widgets),
    };
    const text = (value) => (typeof value === "string" || typeof value === "number" ? String(value) : "");
    visitor.anonymousId = rememberAnonymousId(text(o.anonymousId));
    // init's userId is the signed-in customer (as identify, without an identify event); its userToken
    // lets widgets ask in that customer's name.
    const userId = text(o.userId);
    if (userId) write(USER_KEY, userId);
    visitor.userId = userId || read(USER_KEY) || "";
    proof = userId && typeof o.userToken === "string" && o.userToken ? { userId, userToken: o.userToken } : null;
    listen();
    if (analyticsAllowed() === false) writeQueue([]);
    else if (readQueue().length) schedule(FLUSH_AFTER); // left by an earlier page
    if (o.autoPage !== false) page();
    for (const args of early.splice(0)) call(args);
    if (config.widgets) widgetsWhenReady();
    return undefined;
  };

  const methods = { init, page, track: (event, properties) => track(event, properties), identify, reset, widgets: renderWidgets };
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
