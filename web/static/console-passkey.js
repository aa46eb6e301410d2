// ElevID console passkeys: a staff member registers passkeys on "My
// account" and signs in (or re-authenticates) with one. Forms carry the
// endpoints in data-begin and data-finish. No third-party code.
"use strict";
(function () {
  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function bufToB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function ids(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: b64urlToBuf(c.id) }); });
  }
  function creationOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: b64urlToBuf(pk.user.id) });
    pk.excludeCredentials = ids(pk.excludeCredentials);
    return pk;
  }
  function requestOptions(o) {
    var pk = Object.assign({}, o.publicKey);
    pk.challenge = b64urlToBuf(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = ids(pk.allowCredentials);
    return pk;
  }
  function credentialJSON(cred) {
    var r = cred.response, out = {
      id: cred.id, rawId: bufToB64url(cred.rawId), type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: bufToB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = bufToB64url(r.authenticatorData);
      out.response.signature = bufToB64url(r.signature);
      if (r.userHandle) out.response.userHandle = bufToB64url(r.userHandle);
    }
    return out;
  }
  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (j) {
        if (!res.ok) { var e = new Error(j.error || ""); e.server = true; throw e; }
        return j;
      });
    });
  }
  function setup(form) {
    var status = document.getElementById("passkey-status");
    var error = document.getElementById("passkey-error");
    var d = form.dataset, busy = false, register = d.consolePasskey === "register";
    function fail(err) {
      busy = false;
      if (status) status.textContent = "";
      if (!error) return;
      var msg = d.msgFailed || "Error";
      if (err && err.server && err.message) msg = err.message;
      else if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) msg = d.msgCancelled || msg;
      else if (err && err.name === "InvalidStateError" && d.msgExists) msg = d.msgExists;
      error.textContent = msg;
      error.hidden = false;
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) return;
      if (!(window.PublicKeyCredential && navigator.credentials)) { fail({ server: true, message: d.msgUnsupported }); return; }
      busy = true;
      if (status) status.textContent = d.msgWorking || "";
      if (error) error.hidden = true;
      var label = form.querySelector("[name=label]"), ceremony;
      post(d.begin, {}).then(function (begun) {
        ceremony = begun.ceremony;
        return register
          ? navigator.credentials.create({ publicKey: creationOptions(begun.options) })
          : navigator.credentials.get({ publicKey: requestOptions(begun.options) });
      }).then(function (cred) {
        return post(d.finish, {
          ceremony: ceremony, credential: credentialJSON(cred),
          label: label ? label.value : undefined, return_to: d.returnTo || undefined
        });
      }).then(function (res) {
        window.location.assign(res.next || "/console");
      }).catch(fail);
    });
  }
  function init() {
    var forms = document.querySelectorAll("form[data-console-passkey]");
    for (var i = 0; i < forms.length; i++) setup(forms[i]);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
