// ElevID passkey ceremonies: registration at /enrol and username-less
// login at /login (passkey autofill where the browser supports
// conditional mediation, a button otherwise). Uses webauthn-json.js (load
// it first). No third-party code.
"use strict";
(function () {
  var W = window.ElevIDWebAuthn;
  var creationOptions = W.creationOptions, requestOptions = W.requestOptions, credentialJSON = W.credentialJSON, post = W.post;
  function ui(form) {
    var status = document.getElementById("passkey-status");
    var error = document.getElementById("passkey-error");
    var wait = W.waiter(form);
    return {
      working: function () { if (status) status.textContent = form.dataset.msgWorking || ""; if (error) error.hidden = true; },
      // waiting shows the cancel button and, later, the hint; the
      // returned signal aborts the WebAuthn call on cancel.
      waiting: function (cancelled) { return wait.start(cancelled); },
      // reset returns to the start: no status, no error, no hint.
      reset: function () { wait.stop(); if (status) status.textContent = ""; if (error) error.hidden = true; },
      fail: function (err) {
        wait.stop();
        if (status) status.textContent = "";
        if (!error) return;
        var msg = form.dataset.msgFailed || "Error";
        if (err && err.server && err.message) msg = err.message;
        else if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) msg = form.dataset.msgCancelled || msg;
        else if (err && err.name === "InvalidStateError" && form.dataset.msgExists) msg = form.dataset.msgExists;
        error.textContent = msg;
        error.hidden = false;
      }
    };
  }
  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create);
  }

  function register(form) {
    var u = ui(form), busy = false, cancelled = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) return;
      if (!supported()) { u.fail({ server: true, message: form.dataset.msgUnsupported }); return; }
      busy = true;
      cancelled = false;
      u.working();
      var signal = u.waiting(function () { cancelled = true; busy = false; u.reset(); });
      var label = form.querySelector("[name=label]");
      var ceremony;
      post("/enrol/begin", { code: form.dataset.code }).then(function (begun) {
        ceremony = begun.ceremony;
        return navigator.credentials.create({ publicKey: creationOptions(begun.options), signal: signal });
      }).then(function (cred) {
        return post("/enrol/finish", { ceremony: ceremony, label: label ? label.value : "", credential: credentialJSON(cred) });
      }).then(function (res) {
        window.location.assign(res.next || "/");
      }).catch(function (err) { if (cancelled) return; busy = false; u.fail(err); });
    });
  }

  function login(form) {
    var u = ui(form), conditional = null, busy = false;
    var returnTo = form.dataset.returnTo || "";
    // finish completes the login; via ("conditional" or "button") is
    // kept in sessionStorage and on the page, so that a test can tell
    // which path signed in.
    function finish(ceremony, cred, via) {
      busy = true;
      u.working();
      document.documentElement.setAttribute("data-passkey-login", via);
      try { sessionStorage.setItem("elevid.passkeyLogin", via); } catch (e) { /* storage off */ }
      return post("/login/finish", { ceremony: ceremony, return_to: returnTo, credential: credentialJSON(cred) })
        .then(function (res) { window.location.assign(res.next || "/me"); });
    }
    function startConditional() {
      if (!window.PublicKeyCredential || !PublicKeyCredential.isConditionalMediationAvailable) return;
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (!ok || busy) return;
        var ctl = new AbortController();
        conditional = ctl;
        return post("/login/begin", { mediation: "conditional" }).then(function (begun) {
          return navigator.credentials.get({ mediation: "conditional", publicKey: requestOptions(begun.options), signal: ctl.signal })
            .then(function (cred) { if (cred) return finish(begun.ceremony, cred, "conditional"); });
        });
      }).catch(function (err) {
        if (err && err.name === "AbortError") return;
        busy = false;
        u.fail(err);
      });
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) return;
      if (!supported()) { u.fail({ server: true, message: form.dataset.msgUnsupported }); return; }
      if (conditional) { conditional.abort(); conditional = null; }
      busy = true;
      var cancelled = false;
      u.working();
      var signal = u.waiting(function () { cancelled = true; busy = false; u.reset(); startConditional(); });
      post("/login/begin", {}).then(function (begun) {
        return navigator.credentials.get({ publicKey: requestOptions(begun.options), signal: signal }).then(function (cred) {
          return finish(begun.ceremony, cred, "button");
        });
      }).catch(function (err) { if (cancelled) return; busy = false; u.fail(err); startConditional(); });
    });
    startConditional();
  }

  function init() {
    var reg = document.querySelector("form[data-passkey=register]");
    if (reg) register(reg);
    var log = document.querySelector("form[data-passkey=login]");
    if (log) login(log);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
