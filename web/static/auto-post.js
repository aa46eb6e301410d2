// Submits ElevID's self-posting form (id auto-post-form) to a learning
// platform: the OpenID Connect form_post answer (response_mode=form_post),
// a SAML response or a SAML logout message. Without JavaScript the visible
// button (id auto-post-button) does the same. An external file, so that it
// runs under ElevID's CSP (script-src 'self', no inline script).
(function () {
  "use strict";
  var form = document.getElementById("auto-post-form");
  if (!form) { return; }
  var button = document.getElementById("auto-post-button");
  if (button) { button.disabled = true; }
  form.submit();
})();
