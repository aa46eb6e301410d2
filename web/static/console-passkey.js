// ElevID console passkeys: a staff member registers passkeys on "My
// account" and signs in (or re-authenticates) with one. Forms carry the
// endpoints in data-begin and data-finish. Uses webauthn-json.js (load it
// first). No third-party code.
"use strict";
(function () {
  var W = window.ElevIDWebAuthn;
  var creationOptions = W.creationOptions, requestOptions = W.requestOptions, credentialJSON = W.credentialJSON, post = W.post;
  function setup(form) {
    var status = document.getElementById("passkey-status");
    var error = document.getElementById("passkey-error");
    var d = form.dataset, busy = false, register = d.consolePasskey === "register", wait = W.waiter(form), cancelled = false;
    function fail(err) {
      busy = false;
      wait.stop();
      if (cancelled) return;
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
      cancelled = false;
      if (status) status.textContent = d.msgWorking || "";
      if (error) error.hidden = true;
      // Cancel returns to the start: no status, no error.
      var signal = wait.start(function () { cancelled = true; busy = false; if (status) status.textContent = ""; });
      var label = form.querySelector("[name=label]"), ceremony;
      post(d.begin, {}).then(function (begun) {
        ceremony = begun.ceremony;
        return register
          ? navigator.credentials.create({ publicKey: creationOptions(begun.options), signal: signal })
          : navigator.credentials.get({ publicKey: requestOptions(begun.options), signal: signal });
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
