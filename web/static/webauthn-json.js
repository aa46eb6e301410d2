// ElevID's WebAuthn JSON plumbing, shared by passkey.js (pupils) and
// console-passkey.js (staff): base64url conversion of the server's
// options and of the browser's credential, and JSON POSTs whose errors
// carry the server's (translated) message. No third-party code.
"use strict";
window.ElevIDWebAuthn = (function () {
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
        if (!res.ok) {
          // A server failure's message asks the user to quote the
          // reference id (web.Site.JSONError), so it is shown with it.
          var msg = j.error || "";
          if (res.status >= 500 && msg && j.ref) msg += " (" + j.ref + ")";
          var e = new Error(msg); e.server = true; e.ref = j.ref; throw e;
        }
        return j;
      });
    });
  }
  // waiter shows, while a passkey ceremony waits for the device, a
  // cancel button (#passkey-cancel) at once and a hint (#passkey-hint)
  // after form.dataset.hintAfter ms (8 s). start returns the signal to
  // pass to navigator.credentials; cancel aborts it and calls onCancel.
  function waiter(form) {
    var hint = document.getElementById("passkey-hint");
    var cancel = document.getElementById("passkey-cancel");
    var after = parseInt(form.dataset.hintAfter || "8000", 10), timer = null, ctl = null, onCancel = null;
    function stop() {
      clearTimeout(timer);
      timer = null; ctl = null; onCancel = null;
      if (hint) hint.hidden = true;
      if (cancel) cancel.hidden = true;
    }
    if (cancel) cancel.addEventListener("click", function () {
      var c = ctl, f = onCancel;
      stop();
      if (c) c.abort();
      if (f) f();
    });
    return {
      start: function (cancelled) {
        stop();
        ctl = new AbortController();
        onCancel = cancelled;
        if (cancel) cancel.hidden = false;
        timer = setTimeout(function () { if (hint) hint.hidden = false; }, after);
        return ctl.signal;
      },
      stop: stop
    };
  }
  return { creationOptions: creationOptions, requestOptions: requestOptions, credentialJSON: credentialJSON, post: post, waiter: waiter };
})();
