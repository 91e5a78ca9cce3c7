/*
 * pz-consent.js: the storefront consent banner of the personalization platform.
 *   <script src=".../static/pz/pz-consent.js" data-write-key="pzw_..." data-anonymous-id="..." defer></script>
 *   <button type="button" data-pz-consent-open>Cookie settings</button>
 * Overrides: window.pzConsentConfig = {writeKey, apiHost, anonymousId, userId, userToken, lang, strings}.
 * A userId (data-user-id) goes with its userToken (data-user-token, computed by the shop's server):
 * without it the API refuses to record choices in that user's name, so the banner sends neither.
 * Public API: window.pzConsent = {open(), get(purposeKey), onChange(callback), ready}.
 * localStorage: pz_consent (the last answer), pz_consent_gpc (GPC sent), pz_anonymous_id.
 * No dependencies, no build step. Texts go in with textContent, never innerHTML; nothing throws
 * into the host page (failures end in a console.warn).
 */
(() => {
  "use strict";

  if (window.pzConsent) return; // included twice: the first copy serves

  // Under a Content-Security-Policy that allows <style> only with a nonce, the page gives this script's
  // tag the nonce; the stylesheet added below carries it too. Read now: currentScript is null later.
  const STYLE_NONCE = (document.currentScript && document.currentScript.nonce) || "";

  const ANSWER_KEY = "pz_consent";
  const GPC_KEY = "pz_consent_gpc";
  const ANONYMOUS_KEY = "pz_anonymous_id";
  const EVENT = "pz:consent";

  // Non-ASCII letters are \u escapes: the script stays correct on a page in any encoding, even when
  // it is served without a charset.
  const STRINGS = {
    en: {
      title: "Your privacy choices",
      text: "We use cookies and similar technologies. Some keep the shop working; the others we use only if you agree. You can change your mind at any time under \u201cCookie settings\u201d.",
      acceptAll: "Accept all", rejectAll: "Reject all", choose: "Choose", save: "Save choices",
      policy: "Privacy policy", purposes: "What you allow", alwaysOn: "Always on",
      gpcNotice: "Your browser's Global Privacy Control signal is honoured: {purposes} are off unless you turn them on.",
      error: "Your choice could not be saved. Please check your connection and try again.",
    },
    de: {
      title: "Ihre Datenschutz-Einstellungen",
      text: "Wir verwenden Cookies und \u00e4hnliche Technologien. Einige sind f\u00fcr den Betrieb des Shops n\u00f6tig, die anderen nutzen wir nur mit Ihrer Einwilligung. Sie k\u00f6nnen Ihre Wahl jederzeit unter \u201eCookie-Einstellungen\u201c \u00e4ndern.",
      acceptAll: "Alle akzeptieren", rejectAll: "Alle ablehnen", choose: "Ausw\u00e4hlen", save: "Auswahl speichern",
      policy: "Datenschutzerkl\u00e4rung", purposes: "Was Sie erlauben", alwaysOn: "Immer aktiv",
      gpcNotice: "Das Global-Privacy-Control-Signal Ihres Browsers wird beachtet: {purposes} bleiben aus, solange Sie sie nicht einschalten.",
      error: "Ihre Auswahl konnte nicht gespeichert werden. Bitte pr\u00fcfen Sie Ihre Verbindung und versuchen Sie es erneut.",
    },
    fr: {
      title: "Vos choix de confidentialit\u00e9",
      text: "Nous utilisons des cookies et des technologies similaires. Certains font fonctionner la boutique ; les autres ne sont utilis\u00e9s qu\u2019avec votre accord. Vous pouvez changer d\u2019avis \u00e0 tout moment via \u00ab Param\u00e8tres des cookies \u00bb.",
      acceptAll: "Tout accepter", rejectAll: "Tout refuser", choose: "Personnaliser", save: "Enregistrer mes choix",
      policy: "Politique de confidentialit\u00e9", purposes: "Ce que vous autorisez", alwaysOn: "Toujours actif",
      gpcNotice: "Le signal Global Privacy Control de votre navigateur est respect\u00e9 : {purposes} restent d\u00e9sactiv\u00e9s sauf si vous les activez.",
      error: "Votre choix n\u2019a pas pu \u00eatre enregistr\u00e9. V\u00e9rifiez votre connexion et r\u00e9essayez.",
    },
  };

  const CSS = `
/* fixed at the bottom, over the page: it never shifts the layout */
.pz-consent-root{position:fixed;left:0;right:0;bottom:0;z-index:2147483000;box-sizing:border-box;max-height:85vh;overflow-y:auto;margin:0;padding:16px;
  background:var(--pz-consent-bg,#fff);color:var(--pz-consent-fg,#1b1f27);border-top:1px solid rgba(127,127,127,.35);box-shadow:0 -4px 18px rgba(0,0,0,.14);
  font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;text-align:left;animation:pz-consent-in .2s ease-out}
.pz-consent-root[hidden],.pz-consent-panel[hidden]{display:none}
.pz-consent-root *,.pz-consent-root *::before,.pz-consent-root *::after{box-sizing:border-box}
.pz-consent-inner{max-width:960px;margin:0 auto}
.pz-consent-title{margin:0 0 4px;font-size:1.15em;font-weight:650;line-height:1.3}
/* the heading takes focus only to announce the dialog; it is not a control, so no focus ring */
.pz-consent-title:focus{outline:none}
.pz-consent-text,.pz-consent-gpc{margin:0 0 12px}
.pz-consent-link{color:inherit;text-decoration:underline;text-decoration-color:var(--pz-consent-accent,#1f5fbf);text-underline-offset:2px}
.pz-consent-actions{display:flex;flex-wrap:wrap;gap:8px}
.pz-consent-button{font:inherit;font-weight:600;cursor:pointer;min-height:44px;margin:0;padding:8px 18px;border-radius:6px;border:2px solid var(--pz-consent-accent,#1f5fbf);background:var(--pz-consent-accent,#1f5fbf);color:var(--pz-consent-bg,#fff)}
.pz-consent-button-secondary{background:transparent;color:var(--pz-consent-fg,#1b1f27)}
.pz-consent-button:disabled{opacity:.6;cursor:progress}
.pz-consent-root :focus-visible{outline:3px solid var(--pz-consent-accent,#1f5fbf);outline-offset:2px}
.pz-consent-panel{margin-top:14px;padding-top:12px;border-top:1px solid rgba(127,127,127,.35)}
.pz-consent-purposes{border:0;margin:0 0 12px;padding:0;min-width:0}
.pz-consent-legend{font-weight:650;padding:0;margin:0 0 8px}
.pz-consent-purpose{display:grid;grid-template-columns:auto 1fr;column-gap:10px;margin:0 0 10px}
.pz-consent-checkbox{width:20px;height:20px;margin:2px 0 0;accent-color:var(--pz-consent-accent,#1f5fbf)}
.pz-consent-label{font-weight:600;cursor:pointer}
.pz-consent-always{display:inline-block;margin-left:8px;padding:0 6px;border:1px solid currentColor;border-radius:4px;font-size:.85em;font-weight:400}
.pz-consent-description{grid-column:2;margin:0;font-size:.92em}
.pz-consent-error{margin:0 0 10px;font-weight:600;color:var(--pz-consent-error,#b00020)}
.pz-consent-error:empty{display:none}
@keyframes pz-consent-in{from{transform:translateY(100%)}to{transform:none}}
@media (prefers-reduced-motion:reduce){.pz-consent-root{animation:none}}
`;

  const warn = (...args) => {
    try { console.warn("[pz-consent]", ...args); } catch (_) { /* no console */ }
  };

  // localStorage may be missing or throw (blocked cookies, private modes, sandboxed frames).
  const readRaw = (key) => {
    try { return window.localStorage.getItem(key); } catch (_) { return null; }
  };
  const writeRaw = (key, value) => {
    try { window.localStorage.setItem(key, value); } catch (error) { warn(`could not write localStorage.${key}`, error); }
  };
  const readJson = (key) => {
    try {
      const value = JSON.parse(readRaw(key) || "null");
      return value && typeof value === "object" ? value : null;
    } catch (_) { return null; }
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

  const storedAnonymousId = () => {
    let id = readRaw(ANONYMOUS_KEY);
    if (!id) {
      id = uuid4();
      writeRaw(ANONYMOUS_KEY, id);
    }
    return id;
  };

  // --- configuration: the script tag's data attributes, then window.pzConsentConfig ----------
  const script = document.currentScript || document.querySelector("script[data-write-key][src*='pz-consent']");
  const data = (script && script.dataset) || {};
  const overrides = window.pzConsentConfig && typeof window.pzConsentConfig === "object" ? window.pzConsentConfig : {};
  const pick = (name) => (typeof overrides[name] === "string" && overrides[name]) || data[name] || "";
  const scriptOrigin = () => {
    try { return new URL(script.src, window.location.href).origin; } catch (_) { return window.location.origin; }
  };

  const config = {
    writeKey: pick("writeKey"),
    apiHost: (pick("apiHost") || scriptOrigin()).replace(/\/+$/, ""),
    anonymousId: pick("anonymousId") || storedAnonymousId(),
    userId: pick("userId"),
    userToken: pick("userToken"),
    lang: pick("lang") || document.documentElement.lang || navigator.language || "en",
  };
  const language = String(config.lang).toLowerCase().split(/[-_]/)[0];
  const stringsLanguage = STRINGS[language] ? language : "en";
  const t = Object.assign({}, STRINGS.en, STRINGS[stringsLanguage]);
  if (overrides.strings && typeof overrides.strings === "object") {
    for (const [key, value] of Object.entries(overrides.strings)) if (typeof value === "string") t[key] = value;
  }

  // --- the API -------------------------------------------------------------------------------
  const endpoint = (name) => `${config.apiHost}/api/v1/consent/${name}`;
  const subject = () => {
    const body = { writeKey: config.writeKey, anonymousId: config.anonymousId };
    if (config.userId && config.userToken) Object.assign(body, { userId: config.userId, userToken: config.userToken });
    return body;
  };
  // text/plain keeps the request "simple": no CORS preflight; the server parses the body as JSON.
  // keepalive lets the request finish if the visitor navigates away right after clicking.
  const post = async (name, body) => {
    const options = { method: "POST", headers: { "Content-Type": "text/plain" }, body: JSON.stringify(body), keepalive: true };
    const response = await fetch(endpoint(name), options);
    if (!response.ok) throw new Error(`POST ${name}: HTTP ${response.status}`);
    return response;
  };

  let site = null; // {policy, purposes, gpcWithdraws} from /config
  let loading = null;
  const loadConfig = () => {
    if (!loading) {
      loading = fetch(endpoint("config"))
        .then((response) => {
          if (!response.ok) throw new Error(`GET config: HTTP ${response.status}`);
          return response.json();
        })
        .then((body) => {
          const policy = body && body.policy && typeof body.policy === "object" ? body.policy : null;
          const list = (value) => (Array.isArray(value) ? value : []);
          site = {
            policy: policy && { version: policy.version, url: typeof policy.url === "string" ? policy.url : "" },
            purposes: list(body.purposes)
              .filter((p) => p && typeof p.key === "string")
              .map((p) => ({
                key: p.key,
                name: String(p.name || p.key),
                description: String(p.description || ""),
                required: p.required === true,
              })),
            gpcWithdraws: list(body.gpcWithdraws).map(String),
          };
          return site;
        })
        .catch((error) => {
          loading = null; // let a later open() try again
          throw error;
        });
    }
    return loading;
  };

  const currentVersion = () => (site && site.policy ? site.policy.version : null);
  const optionalPurposes = () => site.purposes.filter((p) => !p.required);
  const gpcOn = () => navigator.globalPrivacyControl === true;
  const storedAnswer = () => {
    const answer = readJson(ANSWER_KEY);
    return answer && answer.choices && typeof answer.choices === "object" ? answer : null;
  };

  // A GPC signal is sent once per anonymous id and policy version, not on every page view.
  const sendGpcOnce = async () => {
    const version = currentVersion();
    const sent = readJson(GPC_KEY);
    if (sent && sent.anonymousId === config.anonymousId && sent.version === version) return;
    await post("gpc", subject());
    writeRaw(GPC_KEY, JSON.stringify({ anonymousId: config.anonymousId, version, at: new Date().toISOString() }));
  };

  // --- the banner ----------------------------------------------------------------------------
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const attributes = (node, values) => {
    for (const [name, value] of Object.entries(values)) node.setAttribute(name, value);
    return node;
  };
  const button = (className, text, onClick) => {
    const node = element("button", className, text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  };
  const safeUrl = (url) => (/^(https?:\/\/|\/)/i.test(url) ? url : "");

  const domReady = new Promise((resolve) => {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", resolve, { once: true });
    else resolve();
  });
  let ui = null;
  let previousFocus = null;
  let busy = false;

  const injectStyle = () => {
    if (document.getElementById("pz-consent-style")) return;
    const style = element("style", "", CSS);
    style.id = "pz-consent-style";
    if (STYLE_NONCE) style.nonce = STYLE_NONCE;
    (document.head || document.documentElement).appendChild(style);
  };

  const build = () => {
    if (ui) return ui;
    injectStyle();
    const root = element("div", "pz-consent-root");
    Object.assign(root, { id: "pz-consent", hidden: true, lang: stringsLanguage });
    attributes(root, { role: "dialog", "aria-modal": "false" });
    attributes(root, { "aria-labelledby": "pz-consent-title", "aria-describedby": "pz-consent-text" });
    const inner = element("div", "pz-consent-inner");

    const title = element("h2", "pz-consent-title", t.title);
    title.id = "pz-consent-title";
    title.tabIndex = -1; // focus target when the banner opens, without being in the tab order
    const text = element("p", "pz-consent-text", t.text);
    text.id = "pz-consent-text";
    const policyUrl = site.policy ? safeUrl(site.policy.url) : "";
    if (policyUrl) {
      const link = element("a", "pz-consent-link", t.policy);
      link.href = policyUrl;
      text.append(" ", link);
    }
    inner.append(title, text);

    const names = site.purposes.filter((p) => site.gpcWithdraws.includes(p.key)).map((p) => p.name);
    if (gpcOn() && names.length) {
      inner.append(element("p", "pz-consent-gpc", t.gpcNotice.split("{purposes}").join(names.join(", "))));
    }

    const error = attributes(element("p", "pz-consent-error"), { role: "alert" });
    const accept = button("pz-consent-button", t.acceptAll, () => record(choicesOf(() => true)));
    const reject = button("pz-consent-button", t.rejectAll, () => record(choicesOf(() => false)));
    const choose = button("pz-consent-button pz-consent-button-secondary", t.choose, () => setExpanded(ui.panel.hidden));
    attributes(choose, { "aria-expanded": "false", "aria-controls": "pz-consent-panel" });
    const actions = element("div", "pz-consent-actions");
    actions.append(accept, reject, choose);

    // The panel follows the "Choose" button, so Tab from it goes straight to the first checkbox.
    const panel = element("div", "pz-consent-panel");
    Object.assign(panel, { id: "pz-consent-panel", hidden: true });
    const fieldset = element("fieldset", "pz-consent-purposes");
    fieldset.append(element("legend", "pz-consent-legend", t.purposes));
    const boxes = {};
    site.purposes.forEach((purpose, index) => {
      const id = `pz-consent-purpose-${index}`;
      const row = element("div", "pz-consent-purpose");
      const box = attributes(element("input", "pz-consent-checkbox"), { "aria-describedby": `${id}-description` });
      Object.assign(box, { type: "checkbox", id, name: purpose.key });
      const label = element("label", "pz-consent-label", purpose.name);
      label.htmlFor = id;
      if (purpose.required) {
        Object.assign(box, { checked: true, disabled: true });
        label.append(element("span", "pz-consent-always", t.alwaysOn));
      }
      const description = element("p", "pz-consent-description", purpose.description);
      description.id = `${id}-description`;
      row.append(box, label, description);
      fieldset.append(row);
      boxes[purpose.key] = box;
    });
    const save = button("pz-consent-button", t.save, () => record(choicesOf((key) => boxes[key].checked)));
    panel.append(fieldset, save);

    inner.append(error, actions, panel);
    root.append(inner);
    // Escape only collapses the "Choose" panel: it never closes the banner or means consent.
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !ui.panel.hidden) {
        event.preventDefault();
        setExpanded(false);
      }
    });
    document.body.appendChild(root);
    ui = { root, title, error, choose, panel, boxes, buttons: [accept, reject, choose, save] };
    return ui;
  };

  const choicesOf = (decide) => {
    const choices = {};
    for (const purpose of optionalPurposes()) choices[purpose.key] = decide(purpose.key) === true;
    return choices;
  };

  const setExpanded = (expanded) => {
    const focusInside = ui.panel.contains(document.activeElement);
    ui.panel.hidden = !expanded;
    ui.choose.setAttribute("aria-expanded", String(expanded));
    if (!expanded && focusInside) ui.choose.focus();
  };

  // The checkboxes start from the stored answer (nothing ticked on a first visit); with GPC on,
  // the purposes it withdraws start unticked.
  const resetBoxes = () => {
    const answer = storedAnswer();
    for (const purpose of optionalPurposes()) {
      const withdrawnByGpc = gpcOn() && site.gpcWithdraws.includes(purpose.key);
      ui.boxes[purpose.key].checked = !withdrawnByGpc && Boolean(answer && answer.choices[purpose.key] === true);
    }
  };

  // Whether the banner can work: a write key, and the purposes and policy from /config.
  const configured = () => {
    if (!config.writeKey) {
      warn("data-write-key is missing: the consent banner is off");
      return Promise.resolve(false);
    }
    return loadConfig().then(
      () => true,
      (error) => {
        warn("could not load the consent configuration", error);
        return false;
      },
    );
  };

  const open = async (automatic) => {
    await domReady;
    if (!(await configured())) return;
    build();
    if (ui.root.hidden) {
      previousFocus = document.activeElement;
      resetBoxes();
      setExpanded(false);
      ui.error.textContent = "";
      ui.root.hidden = false;
    }
    // Opening by itself on page load does not take focus from a field the visitor is using.
    const idle = !previousFocus || previousFocus === document.body || previousFocus === document.documentElement;
    if (!automatic || idle) ui.title.focus();
  };

  // What the footer button and pzConsent.open() call: never a rejected promise for the host page.
  const openSafely = (automatic) => open(automatic).catch((error) => warn("could not open the banner", error));

  const close = () => {
    ui.root.hidden = true;
    const target = previousFocus;
    previousFocus = null;
    if (target && target !== document.body && target.isConnected && typeof target.focus === "function") target.focus();
  };

  const setBusy = (value) => {
    busy = value;
    ui.root.setAttribute("aria-busy", String(value));
    for (const node of ui.buttons) node.disabled = value;
  };

  const record = async (choices) => {
    if (busy) return;
    const version = currentVersion();
    setBusy(true);
    ui.error.textContent = "";
    try {
      // With no optional purpose there is nothing to record (the API needs at least one choice).
      if (Object.keys(choices).length) {
        await post("choices", Object.assign(subject(), { choices, source: "banner", policyVersion: version, gpc: gpcOn() }));
      }
    } catch (error) {
      warn("could not record the consent choice", error);
      ui.error.textContent = t.error;
      return;
    } finally {
      setBusy(false);
    }
    const all = Object.assign({}, ...site.purposes.filter((p) => p.required).map((p) => ({ [p.key]: true })), choices);
    writeRaw(ANSWER_KEY, JSON.stringify({ version, choices: all, at: new Date().toISOString() }));
    close();
    document.dispatchEvent(new CustomEvent(EVENT, { detail: { choices: all, version } })); // listeners' errors stay theirs
  };

  // --- public API ----------------------------------------------------------------------------
  const get = (purposeKey) => {
    if (site && site.purposes.some((p) => p.key === purposeKey && p.required)) return true;
    const answer = storedAnswer();
    const value = answer ? answer.choices[purposeKey] : undefined;
    return typeof value === "boolean" ? value : undefined;
  };

  const onChange = (callback) => {
    if (typeof callback !== "function") return () => {};
    const listener = (event) => {
      try { callback(event.detail); } catch (error) { warn("a pz:consent listener failed", error); }
    };
    document.addEventListener(EVENT, listener);
    return () => document.removeEventListener(EVENT, listener);
  };

  const start = async () => {
    document.addEventListener("click", (event) => {
      const trigger = event.target instanceof Element && event.target.closest("[data-pz-consent-open]");
      if (trigger) {
        event.preventDefault();
        openSafely(false);
      }
    });
    if (!(await configured())) return;
    if (gpcOn()) sendGpcOnce().catch((error) => warn("could not send the Global Privacy Control signal", error));
    const answer = storedAnswer();
    // Ask when there is no answer yet, or when the answer was given under another policy version.
    if (optionalPurposes().length && (!answer || answer.version !== currentVersion())) await openSafely(true);
  };

  // `ready` resolves once the banner has decided whether to show itself (it never rejects).
  const ready = domReady.then(start).catch((error) => warn("could not start", error));
  window.pzConsent = Object.freeze({ open: () => openSafely(false), get, onChange, ready });
})();
