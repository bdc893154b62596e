/* Gatehouse setup wizard.
 *
 * Access: a setup link carries a one-time token in the URL fragment (#t=…), which browsers never send to a
 * server. This script removes it from the address bar before anything else and trades it for a wizard session
 * (an HttpOnly cookie) plus a CSRF token that every state-changing call sends as X-CSRF-Token. Alternatively
 * the admin pastes the tenant admin key, kept in this tab's sessionStorage and sent as a Bearer token.
 * Progress always comes from the API, so a reload loses nothing. Data is only ever inserted with textContent.
 */
(function () {
  "use strict";

  var tenant = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
  var API = "/api/tenants/" + encodeURIComponent(tenant) + "/";
  var SESSION = "/api/setup/" + encodeURIComponent(tenant) + "/session";
  var KEY_STORE = "gatehouse.setup.adminKey." + tenant;
  var auth = { key: null, csrf: null };
  var summary = null;
  var STEP_ORDER = ["service_provider", "idp_metadata", "scim_token", "domains", "default_department", "mobile",
                    "enabled"];

  function $(id) { return document.getElementById(id); }
  function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }
  function make(tag, value, cls) {
    var el = document.createElement(tag);
    if (value != null) el.textContent = String(value);
    if (cls) el.className = cls;
    return el;
  }
  function show(el, visible) { el.hidden = !visible; }

  // ---- the fragment token never stays in the address bar ------------------------------------------------
  var linkToken = null;
  (function takeTokenFromFragment() {
    var match = /(?:^#|&)t=([^&]+)/.exec(location.hash || "");
    if (location.hash) {
      history.replaceState(null, "", location.pathname + location.search);
    }
    if (match) linkToken = decodeURIComponent(match[1]);
  })();

  // ---- API ---------------------------------------------------------------------------------------------
  function request(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth.key) headers["Authorization"] = "Bearer " + auth.key;
    else if (auth.csrf && method !== "GET") headers["X-CSRF-Token"] = auth.csrf;
    return fetch(url, {
      method: method, headers: headers, credentials: "same-origin", cache: "no-store", redirect: "error",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (res) {
      return res.text().then(function (raw) {
        var data = {};
        try { data = raw ? JSON.parse(raw) : {}; } catch (e) { data = {}; }
        var result = { ok: res.ok, status: res.status, data: data || {} };
        if (res.status === 401 && url.indexOf(API) === 0) lostAccess(data.message);
        return result;
      });
    }, function () {
      return { ok: false, status: 0, data: { message: "The service cannot be reached. Check your connection and retry." } };
    });
  }
  function api(method, path, body) { return request(method, API + path, body); }

  function messageOf(res) {
    if (res.data && res.data.message) return res.data.message;
    if (res.status === 404) return "This part of the setup is not available on this server yet.";
    return "Something went wrong (HTTP " + res.status + "). Please retry.";
  }

  // ---- errors next to the field that caused them ---------------------------------------------------------
  function setFieldError(inputId, errorId, message) {
    var error = $(errorId);
    text(error, message || "");
    var input = inputId && $(inputId);
    if (input) {
      if (message) { input.setAttribute("aria-invalid", "true"); input.focus(); }
      else input.removeAttribute("aria-invalid");
    }
  }
  // fields: API field name (or its first segment) → [input id, error id]; fallback: where the rest goes, either
  // an error id or [input id, error id] when the form has one field that must have caused it.
  function showApiError(res, fields, fallback) {
    var field = (res.data && res.data.field) || "";
    var head = field.split(/[.\[]/)[0];
    var target = fields[field] || fields[head] || (Array.isArray(fallback) ? fallback : [null, fallback]);
    setFieldError(target[0], target[1], messageOf(res));
  }
  function clearErrors(fields, fallbackErrorId) {
    Object.keys(fields).forEach(function (name) { setFieldError(fields[name][0], fields[name][1], ""); });
    if (fallbackErrorId) text($(fallbackErrorId), "");
  }
  function banner(message, ok) {
    var el = $("global-message");
    text(el, message || "");
    el.classList.toggle("ok", !!ok);
    show(el, !!message);
  }
  function busy(button, isBusy) { if (button) button.disabled = isBusy; }

  // ---- access ------------------------------------------------------------------------------------------
  function lostAccess(message) {
    auth.csrf = null;
    if (auth.key) { auth.key = null; try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* private mode */ } }
    showAccess(message || "Your setup session has ended.");
  }
  function showAccess(reason) {
    show($("steps"), false);
    show($("sign-out"), false);
    show($("access"), true);
    text($("access-reason"), reason || "");
    text($("status-badge"), "not signed in");
    $("status-badge").className = "badge";
  }
  function startWizard() {
    show($("access"), false);
    show($("steps"), true);
    show($("sign-out"), true);
    text($("sign-out"), auth.key ? "Forget the admin key" : "End this setup session");
    return refresh();
  }

  function begin() {
    var stored = null;
    try { stored = sessionStorage.getItem(KEY_STORE); } catch (e) { stored = null; }
    if (linkToken) {
      var token = linkToken;
      linkToken = null;
      return request("POST", SESSION, { token: token }).then(function (res) {
        if (res.ok) { auth.csrf = res.data.csrf_token; return startWizard(); }
        // A used or expired link may still find an earlier session of this browser.
        return resumeSession(messageOf(res));
      });
    }
    if (stored) { auth.key = stored; return startWizard(); }
    return resumeSession(null);
  }
  function resumeSession(linkError) {
    return request("GET", SESSION).then(function (res) {
      if (res.ok && res.data.csrf_token) {
        auth.csrf = res.data.csrf_token;
        if (linkError) banner(linkError + " You are still signed in from earlier in this browser.");
        return startWizard();
      }
      showAccess(linkError || "");
    });
  }

  $("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var key = $("admin-key").value.trim();
    if (!key) { setFieldError("admin-key", "admin-key-error", "Paste the tenant admin key."); return; }
    auth.key = key;
    auth.csrf = null;
    request("GET", API + "sso").then(function (res) {
      if (!res.ok) {
        auth.key = null;
        setFieldError("admin-key", "admin-key-error", messageOf(res));
        show($("access"), true);
        return;
      }
      try { sessionStorage.setItem(KEY_STORE, key); } catch (e) { /* kept in memory only */ }
      $("admin-key").value = "";
      setFieldError("admin-key", "admin-key-error", "");
      startWizard();
    });
  });

  $("sign-out").addEventListener("click", function () {
    var wasKey = !!auth.key;
    auth.key = null;
    try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* nothing stored */ }
    var done = wasKey ? Promise.resolve() : request("DELETE", SESSION);
    done.then(function () { auth.csrf = null; showAccess("You have left the setup. Your progress is saved."); });
  });

  // ---- progress and state from GET /sso --------------------------------------------------------------------
  function refresh() {
    return api("GET", "sso").then(function (res) {
      if (!res.ok) { if (res.status !== 401) banner(messageOf(res)); return; }
      render(res.data);
      loadMobile();
      loadRoles();
      loadAudit();
      loadVerification();
    });
  }

  function formatTime(value) {
    if (!value) return "";
    var date = new Date(value);
    if (isNaN(date.getTime())) return String(value);
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
  function formatExpiry(value) {
    var date = new Date(value);
    if (isNaN(date.getTime())) return String(value || "");
    var days = Math.round((date.getTime() - Date.now()) / 86400000);
    var when = date.toLocaleDateString(undefined, { dateStyle: "medium" });
    if (days < 0) return when + " (expired)";
    return when + " (in " + days + " day" + (days === 1 ? "" : "s") + ")";
  }

  function renderProduct(product) {
    var clients = product.clients || [];
    text($("product-state"), clients.length
      ? "Connected: the app signs employees in and out through this sign-in."
      : "Not connected yet: the app's provider has not registered the app.");
    show($("product-details"), true);
    text($("product-issuer"), product.issuer);
    var list = $("product-clients");
    list.textContent = "";
    clients.forEach(function (client) {
      var item = make("li", client.client_name || "App " + client.client_id.slice(0, 8));
      var facts = [
        "returns to " + client.redirect_uris.join(", "),
        client.backchannel_logout_uri ? "told when a session ends" : "not told when a session ends",
        client.initiate_login_uri ? "My Apps opens it" : "My Apps opens the company's app page"
      ];
      item.appendChild(make("span", " — " + facts.join("; "), "hint"));
      list.appendChild(item);
    });
  }

  function render(data) {
    summary = data;
    var steps = data.steps || {};
    text($("tenant-name"), data.name || tenant);
    var badge = $("status-badge");
    var labels = { draft: "draft: not yet in use", testing: "self-check passed", enabled: "enabled for all employees" };
    text(badge, labels[data.status] || data.status);
    badge.className = "badge " + (data.status || "");

    var current = null;
    STEP_ORDER.forEach(function (name) {
      var state = steps[name] || {};
      var done = !!state.done;
      if (!done && !current && !state.optional) current = name;
      var item = document.querySelector('#progress li[data-step="' + name + '"]');
      var section = document.querySelector('section.step[data-step="' + name + '"]');
      if (item) {
        item.classList.toggle("done", done);
        var link = item.querySelector("a");
        var mark = link.querySelector(".visually-hidden") || link.appendChild(make("span", "", "visually-hidden"));
        text(mark, done ? " (done)" : (state.optional ? " (optional)" : ""));
      }
      if (section) section.classList.toggle("done", done);
    });
    STEP_ORDER.forEach(function (name) {
      var item = document.querySelector('#progress li[data-step="' + name + '"]');
      if (!item) return;
      item.classList.toggle("current", name === current);
      var link = item.querySelector("a");
      if (name === current) link.setAttribute("aria-current", "step"); else link.removeAttribute("aria-current");
    });

    $("sp-entity-id").value = data.sp_entity_id || "";
    $("acs-url").value = data.acs_url || "";
    $("slo-url").value = data.slo_url || "";
    if (data.product) renderProduct(data.product);
    $("scim-url").value = data.scim_tenant_url || "";

    var idp = steps.idp_metadata || {};
    if (idp.done) {
      var connection = { idp_entity_id: idp.idp_entity_id, sso_url: idp.sso_url, certificates: idp.certificates,
                         checked_at: idp.checked_at };
      // GET /sso may summarise less than the check answered: keep what this page saw for the same IdP.
      if (lastConnection && lastConnection.idp_entity_id === idp.idp_entity_id) {
        ["sso_url", "certificates"].forEach(function (k) { if (connection[k] == null) connection[k] = lastConnection[k]; });
      }
      showConnection(connection);
    } else {
      show($("idp-result"), false);
    }
    if (data.metadata_url && !$("metadata-url").value) $("metadata-url").value = data.metadata_url;

    var scim = steps.scim_token || {};
    text($("scim-token-state"), scim.done ? "A token was generated " + formatTime(scim.created_at) +
      ". Generate a new one only if you lost it: the current token then stops working." : "");

    var domains = (steps.domains || {}).domains || [];
    if (domains.length && !$("domains").value) $("domains").value = domains.join("\n");
    var department = (steps.default_department || {}).department;
    if (department && !$("department").value) $("department").value = department;

    var selfCheck = steps.self_check || {};
    text($("self-check-state"), selfCheck.done ? "Self-check passed " + formatTime(selfCheck.at) + "." :
      "Self-check not done yet.");
    var enabled = data.status === "enabled";
    show($("enable"), !enabled);
    show($("cancel-setup"), !enabled);
    show($("test-link"), !enabled);
    text($("enabled-state"), enabled ? "Single sign-on is enabled for all employees" +
      ((steps.enabled || {}).at ? " since " + formatTime(steps.enabled.at) : "") +
      ". To turn it off, contact technical support." : "");
  }

  // ---- copy buttons --------------------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button.copy");
    if (!button) return;
    var input = $(button.getAttribute("data-copy"));
    if (!input || !input.value) return;
    var announce = function () {
      text($("copy-status"), "Copied to the clipboard.");
      var label = button.textContent;
      text(button, "Copied");
      setTimeout(function () { text(button, label === "Copied" ? "Copy" : label); }, 1500);
    };
    var fallback = function () { input.select(); try { document.execCommand("copy"); } catch (e) { /* select stays */ } announce(); };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(announce, fallback);
    else fallback();
  });

  // ---- step 2: IdP metadata ------------------------------------------------------------------------------
  var lastConnection = null;
  function showConnection(result) {
    text($("idp-entity-id"), result.idp_entity_id || "");
    text($("idp-sso-url"), result.sso_url || "—");
    text($("idp-checked-at"), result.checked_at ? formatTime(result.checked_at) : "just now");
    var certificates = result.certificates || [];
    var body = $("cert-table").querySelector("tbody");
    body.replaceChildren();
    certificates.forEach(function (cert) {
      var row = make("tr");
      var fp = make("td", cert.sha256, "fingerprint");
      fp.setAttribute("data-label", "SHA-256");
      var exp = make("td", formatExpiry(cert.not_after));
      exp.setAttribute("data-label", "Expires");
      row.append(fp, exp);
      body.append(row);
    });
    show($("cert-table"), certificates.length > 0);
    show($("idp-result"), true);
  }

  var IDP_FIELDS = { metadata_url: ["metadata-url", "metadata-url-error"], metadata_xml: ["metadata-url", "metadata-url-error"] };
  $("idp-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(IDP_FIELDS);
    var url = $("metadata-url").value.trim();
    if (!url) { setFieldError("metadata-url", "metadata-url-error", "Paste the App Federation Metadata URL from Entra."); return; }
    var button = event.submitter || this.querySelector("button");
    busy(button, true);
    show($("idp-result"), false);
    api("POST", "sso/idp-metadata", { metadata_url: url }).then(function (res) {
      busy(button, false);
      if (!res.ok) { if (res.status !== 401) showApiError(res, IDP_FIELDS, IDP_FIELDS.metadata_url); return; }
      lastConnection = res.data;
      showConnection(res.data);
      refreshProgressOnly();
    });
  });

  function refreshProgressOnly() {
    return api("GET", "sso").then(function (res) {
      if (res.ok) render(res.data);
    });
  }

  // ---- step 3: SCIM token ----------------------------------------------------------------------------------
  $("generate-token").addEventListener("click", function () {
    var button = this;
    var already = summary && summary.steps && summary.steps.scim_token && summary.steps.scim_token.done;
    var go = already ? confirmAction("Generate a new token?",
      "The token Entra uses now stops working at once. Paste the new one into Entra's Secret Token field.",
      "Generate a new token") : Promise.resolve(true);
    go.then(function (ok) {
      if (!ok) return;
      busy(button, true);
      text($("scim-token-error"), "");
      api("POST", "scim/token").then(function (res) {
        busy(button, false);
        if (!res.ok) { if (res.status !== 401) text($("scim-token-error"), messageOf(res)); return; }
        $("scim-token").value = res.data.secret_token || "";
        if (res.data.scim_tenant_url) $("scim-url").value = res.data.scim_tenant_url;
        show($("scim-token-box"), true);
        $("scim-token").focus();
        $("scim-token").select();
        refreshProgressOnly();
      });
    });
  });

  // ---- step 4: domains and the audit -----------------------------------------------------------------------
  var DOMAIN_FIELDS = { domains: ["domains", "domains-error"], include_subdomains: ["domains", "domains-error"] };
  $("domains-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(DOMAIN_FIELDS);
    var domains = $("domains").value.split(/[\s,;]+/).map(function (d) { return d.trim(); }).filter(Boolean);
    if (!domains.length) { setFieldError("domains", "domains-error", "Enter at least one corporate domain, e.g. example.com."); return; }
    var button = event.submitter || this.querySelector("button");
    busy(button, true);
    api("PUT", "domains", { domains: domains }).then(function (res) {
      if (!res.ok) { busy(button, false); if (res.status !== 401) showApiError(res, DOMAIN_FIELDS, DOMAIN_FIELDS.domains); return null; }
      loadVerification();
      return runAudit().then(function () { busy(button, false); refreshProgressOnly(); });
    });
  });

  function runAudit() {
    return api("POST", "domain-audit").then(function (res) {
      if (!res.ok) { if (res.status !== 401) setFieldError(null, "domains-error", messageOf(res)); return; }
      renderAudit(res.data);
    });
  }
  function loadAudit() {
    return api("GET", "domain-audit").then(function (res) { if (res.ok) renderAudit(res.data); });
  }

  // Domain ownership: each domain's TXT record, and the check that verifies it (email_verified depends on it).
  var STATE_TEXT = { unverified: "Not verified", pending: "Waiting for the DNS record", verified: "Verified" };
  function loadVerification() {
    return api("GET", "domains").then(function (res) {
      if (res.ok) renderVerification(res.data.verification || []);
    });
  }
  function renderVerification(rows) {
    var body = $("verification-table").querySelector("tbody");
    body.replaceChildren();
    rows.forEach(function (row) { body.append(verificationRow(row)); });
    show($("verification"), rows.length > 0);
  }
  function verificationRow(entry) {
    var row = make("tr");
    row.setAttribute("data-domain", entry.domain);
    var record = make("td");
    record.setAttribute("data-label", "TXT record to create");
    if (entry.record_name) {
      var name = make("code", entry.record_name, "record-name");
      var value = make("code", entry.record_value, "record-value");
      record.append(make("span", "Name: "), name, make("br"), make("span", "Value: "), value);
    }
    var actions = make("td");
    actions.setAttribute("data-label", "Action");
    var error = make("p", "", "field-error");
    error.setAttribute("aria-live", "polite");
    if (entry.state !== "verified") {
      var action = make("button", entry.record_name ? "Check" : "Show record");
      action.type = "button";
      action.setAttribute("aria-label", (entry.record_name ? "Check the DNS record of " : "Show the DNS record for ") +
        entry.domain);
      action.addEventListener("click", function () {
        busy(action, true);
        text(error, "");
        var path = "domains/" + encodeURIComponent(entry.domain) + "/verification" + (entry.record_name ? "/check" : "");
        api("POST", path).then(function (res) {
          busy(action, false);
          if (!res.ok) { if (res.status !== 401) text(error, messageOf(res)); return; }
          loadVerification();
        });
      });
      actions.append(action);
    }
    actions.append(error);
    row.append(cell("Domain", entry.domain), cell("State", STATE_TEXT[entry.state] || entry.state), record, actions);
    return row;
  }

  function renderAudit(run) {
    if (!run || run.status === "never_run") return;
    show($("audit-result"), true);
    var when = run.finished_at || run.started_at;
    var checked = when ? " Checked " + formatTime(when) + "." : "";
    var body = $("audit-table").querySelector("tbody");
    if (!Array.isArray(run.outside)) {  // still running, interrupted or failed: say so, keep the last table
      text($("audit-summary"), run.message || run.reason || "The check has not finished yet.");
      return;
    }
    var rows = run.outside;
    var count = run.outside_count != null ? run.outside_count : rows.length;
    var allowed = run.allowed ? " " + run.allowed + " allowed to lose access." : "";
    text($("audit-summary"), count === 0
      ? "Every active employee's email is in the corporate domains." + allowed + checked
      : count + " employee" + (count === 1 ? "" : "s") + " cannot sign in once SSO is enabled unless you fix the " +
        "email or allow the loss of access." + allowed + checked + (run.message ? " " + run.message : ""));
    body.replaceChildren();
    rows.forEach(function (employee) { body.append(auditRow(employee)); });
    show($("audit-table"), rows.length > 0);
  }

  function cell(label, value) {
    var td = make("td", value);
    td.setAttribute("data-label", label);
    return td;
  }

  function auditRow(employee) {
    var id = employee.id;
    var name = employee.name || employee.display_name || employee.displayName || employee.user_name || "";
    var row = make("tr");
    row.setAttribute("data-employee", id);
    var emailCell = cell("Email", employee.email || "");
    row.append(cell("Name", name), emailCell, cell("Why", employee.why || employee.reason || ""));
    var actions = make("td");
    actions.setAttribute("data-label", "Action");
    if (employee.allowed) {
      row.className = "allowed";
      actions.append(make("span", "Allowed: loses access when SSO is enabled"));
    } else {
      var edit = make("button", "Edit");
      edit.type = "button";
      edit.setAttribute("aria-label", "Edit the email of " + (name || employee.email));
      edit.addEventListener("click", function () { editEmail(row, emailCell, employee, name); });
      var allow = make("button", "Allow");
      allow.type = "button";
      allow.setAttribute("aria-label", "Allow " + (name || employee.email) + " to lose access");
      allow.addEventListener("click", function () { allowEmployee(allow, employee, name, actions); });
      actions.append(edit, allow);
    }
    var rowError = make("p", "", "field-error");
    rowError.setAttribute("aria-live", "polite");
    actions.append(rowError);
    row.append(actions);
    return row;
  }

  var editCounter = 0;
  function editEmail(row, emailCell, employee, name) {
    editCounter += 1;
    var inputId = "edit-email-" + editCounter;
    var errorId = inputId + "-error";
    emailCell.replaceChildren();
    var label = make("label", "New email for " + (name || employee.email));
    label.setAttribute("for", inputId);
    var input = make("input");
    input.type = "email";
    input.id = inputId;
    input.value = employee.email || "";
    input.autocomplete = "off";
    input.setAttribute("aria-describedby", errorId);
    var error = make("p", "", "field-error");
    error.id = errorId;
    error.setAttribute("aria-live", "polite");
    var save = make("button", "Save");
    save.type = "button";
    var cancel = make("button", "Cancel");
    cancel.type = "button";
    cancel.className = "secondary";
    var submit = function () {
      var email = input.value.trim();
      if (!email) { setFieldError(inputId, errorId, "Enter the employee's corporate email."); return; }
      busy(save, true);
      api("PATCH", "employees/" + encodeURIComponent(employee.id), { email: email }).then(function (res) {
        busy(save, false);
        if (!res.ok) { if (res.status !== 401) setFieldError(inputId, errorId, messageOf(res)); return; }
        text($("audit-note"), "Email of " + (name || employee.email) + " changed to " + (res.data.email || email) + "." +
          (res.data.warning ? " " + res.data.warning : ""));
        runAudit();
      });
    };
    save.addEventListener("click", submit);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); submit(); }
      if (event.key === "Escape") { event.preventDefault(); cancel.click(); }
    });
    cancel.addEventListener("click", function () {
      emailCell.replaceChildren();
      text(emailCell, employee.email || "");
      row.querySelector("button").focus();
    });
    emailCell.append(label, input, error, save, cancel);
    input.focus();
    input.select();
  }

  function allowEmployee(button, employee, name, actions) {
    confirmAction("Allow the loss of access?",
      (name || employee.email) + " will not be able to sign in once single sign-on is enabled. Do this only for " +
      "someone who no longer needs access.", "Allow").then(function (ok) {
      if (!ok) return;
      busy(button, true);
      api("POST", "employees/" + encodeURIComponent(employee.id) + "/allow").then(function (res) {
        busy(button, false);
        if (!res.ok) { if (res.status !== 401) text(actions.querySelector(".field-error"), messageOf(res)); return; }
        text($("audit-note"), (name || employee.email) + " is allowed to lose access when SSO is enabled.");
        runAudit();
      });
    });
  }

  // ---- step 5: default department --------------------------------------------------------------------------
  var DEPARTMENT_FIELDS = { department: ["department", "department-error"] };
  $("department-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(DEPARTMENT_FIELDS);
    text($("department-saved"), "");
    var department = $("department").value.trim();
    if (!department) { setFieldError("department", "department-error", "Enter a department name."); return; }
    var button = event.submitter || this.querySelector("button");
    busy(button, true);
    api("PUT", "default-department", { department: department }).then(function (res) {
      busy(button, false);
      if (!res.ok) { if (res.status !== 401) showApiError(res, DEPARTMENT_FIELDS, DEPARTMENT_FIELDS.department); return; }
      text($("department-saved"), "Saved: new employees from Entra land in " + (res.data.department || department) + ".");
      refreshProgressOnly();
    });
  });

  // ---- roles from Entra groups --------------------------------------------------------------------------------
  function renderRoles(data) {
    var roles = data.roles || [];
    var mapped = {};
    (data.mappings || []).forEach(function (m) { mapped[m.group_id] = m.roles || []; });
    var head = $("roles-table").querySelector("thead tr");
    while (head.children.length > 1) head.removeChild(head.lastChild);
    roles.forEach(function (role) { head.appendChild(make("th", role)).setAttribute("scope", "col"); });
    var body = $("roles-table").querySelector("tbody");
    while (body.firstChild) body.removeChild(body.firstChild);
    (data.groups || []).forEach(function (group) {
      var row = make("tr");
      row.appendChild(make("th", group.display_name || group.id)).setAttribute("scope", "row");
      roles.forEach(function (role) {
        var cell = make("td");
        var label = make("label");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.id = "role-" + group.id + "-" + role;
        box.setAttribute("data-group", group.id);
        box.setAttribute("data-role", role);
        box.checked = (mapped[group.id] || []).indexOf(role) >= 0;
        label.appendChild(box);
        label.appendChild(make("span", (group.display_name || group.id) + ": " + role, "visually-hidden"));
        cell.appendChild(label);
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    var any = (data.groups || []).length > 0;
    show($("roles-form"), any);
    show($("roles-empty"), !any);
    text($("rehire-rule"), data.rehire_rule || "");
  }
  function loadRoles() {
    return api("GET", "role-mappings").then(function (res) { if (res.ok) renderRoles(res.data); });
  }
  $("roles-form").addEventListener("submit", function (event) {
    event.preventDefault();
    text($("roles-error"), "");
    text($("roles-saved"), "");
    var mappings = {};
    this.querySelectorAll("input[type=checkbox]").forEach(function (box) {
      if (!box.checked) return;
      var group = box.getAttribute("data-group");
      (mappings[group] = mappings[group] || []).push(box.getAttribute("data-role"));
    });
    var button = event.submitter || this.querySelector("button");
    busy(button, true);
    api("PUT", "role-mappings", { mappings: mappings }).then(function (res) {
      busy(button, false);
      if (!res.ok) { if (res.status !== 401) text($("roles-error"), messageOf(res)); return; }
      renderRoles(res.data);
      text($("roles-saved"), "Saved: employees' roles follow their Entra groups now.");
    });
  });

  // ---- step 6: mobile ----------------------------------------------------------------------------------------
  function loadMobile() {
    return api("GET", "mobile").then(function (res) {
      if (!res.ok) return;
      var ids = res.data.operator_identifiers || {};
      var ios = ids.ios || {};
      var android = ids.android || {};
      $("ios-bundle-id").value = ios.bundle_id || "";
      $("android-package").value = android.package_name || "";
      $("android-signature").value = android.signature_hash || "";
      var stored = res.data.config || res.data.mobile || res.data;
      if (stored.ios_redirect_uri && !$("ios-redirect-uri").value) $("ios-redirect-uri").value = stored.ios_redirect_uri;
      if (stored.msal_configuration && !$("msal-configuration").value) {
        $("msal-configuration").value = typeof stored.msal_configuration === "string"
          ? stored.msal_configuration : JSON.stringify(stored.msal_configuration, null, 2);
      }
    });
  }

  var MOBILE_FIELDS = {
    ios_redirect_uri: ["ios-redirect-uri", "ios-redirect-uri-error"],
    ios_bundle_id: ["ios-redirect-uri", "ios-redirect-uri-error"],
    msal_configuration: ["msal-configuration", "msal-configuration-error"],
    android_package_name: ["msal-configuration", "msal-configuration-error"],
    android_signature_hash: ["msal-configuration", "msal-configuration-error"]
  };
  $("mobile-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(MOBILE_FIELDS, "mobile-error");
    text($("mobile-saved"), "");
    var body = {};
    var redirect = $("ios-redirect-uri").value.trim();
    var msal = $("msal-configuration").value.trim();
    if (redirect) body.ios_redirect_uri = redirect;
    if (msal) body.msal_configuration = msal;
    if (!redirect && !msal) {
      setFieldError("ios-redirect-uri", "ios-redirect-uri-error", "Paste the iOS Redirect URI, the MSAL Configuration, or both.");
      return;
    }
    var button = event.submitter || this.querySelector("button");
    busy(button, true);
    api("PUT", "mobile", body).then(function (res) {
      busy(button, false);
      if (!res.ok) { if (res.status !== 401) showApiError(res, MOBILE_FIELDS, "mobile-error"); return; }
      text($("mobile-saved"), "Saved. The mobile apps can now sign in with Entra.");
      refreshProgressOnly();
    });
  });

  // ---- step 7: test, enable, cancel ------------------------------------------------------------------------
  $("test-link").addEventListener("click", function () {
    var button = this;
    busy(button, true);
    text($("test-error"), "");
    api("POST", "sso/test-link").then(function (res) {
      busy(button, false);
      if (!res.ok) { if (res.status !== 401) text($("test-error"), messageOf(res)); return; }
      var url = String(res.data.url || "");
      if (!/^https?:\/\//i.test(url)) { text($("test-error"), "The server returned no usable self-check link."); return; }
      $("test-url").value = url;
      $("test-open").href = url;
      show($("test-box"), true);
      $("test-open").focus();
    });
  });

  $("enable").addEventListener("click", function () {
    var button = this;
    confirmAction("Enable single sign-on for all employees?",
      "Every employee will sign in with Microsoft Entra from now on; employees with an email outside the corporate " +
      "domains lose access. You cannot undo this yourself: only technical support can turn single sign-on off.",
      "Enable for all employees").then(function (ok) {
      if (!ok) return;
      busy(button, true);
      text($("enable-error"), "");
      api("POST", "sso/enable").then(function (res) {
        busy(button, false);
        if (!res.ok) { if (res.status !== 401) text($("enable-error"), messageOf(res)); return; }
        render(res.data.steps ? res.data : summary);
        refreshProgressOnly();
      });
    });
  });

  $("cancel-setup").addEventListener("click", function () {
    var button = this;
    confirmAction("Cancel the setting?",
      "The connection to Entra and the self-check are forgotten and the setup returns to draft. Employees keep " +
      "signing in as before. You can start again at any time.", "Cancel the setting").then(function (ok) {
      if (!ok) return;
      busy(button, true);
      text($("enable-error"), "");
      api("POST", "sso/cancel").then(function (res) {
        busy(button, false);
        if (!res.ok) { if (res.status !== 401) text($("enable-error"), messageOf(res)); return; }
        $("metadata-url").value = "";
        show($("test-box"), false);
        banner("The setting was cancelled: the setup is back to draft.", true);
        refreshProgressOnly();
      });
    });
  });

  // ---- confirmation dialog -----------------------------------------------------------------------------------
  function confirmAction(title, message, okLabel) {
    var dialog = $("confirm");
    text($("confirm-title"), title);
    text($("confirm-text"), message);
    text($("confirm-ok"), okLabel);
    return new Promise(function (resolve) {
      var opener = document.activeElement;
      dialog.returnValue = "";
      dialog.addEventListener("close", function () {
        resolve(dialog.returnValue === "ok");
        if (opener && opener.focus) opener.focus();
      }, { once: true });
      dialog.showModal();
    });
  }

  // The self-check happens in another window: pick up its result when the admin comes back.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && (auth.key || auth.csrf)) refreshProgressOnly();
  });
  window.addEventListener("focus", function () { if (auth.key || auth.csrf) refreshProgressOnly(); });

  begin();
})();
