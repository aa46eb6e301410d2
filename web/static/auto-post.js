// Submits the OpenID Connect form_post answer to the learning platform
// (response_mode=form_post). Without JavaScript the visible button does the
// same. An external file, so that it runs under ElevID's CSP
// (script-src 'self', no inline script).
(function () {
  "use strict";
  var form = document.getElementById("auto-post-form");
  if (!form) { return; }
  var button = document.getElementById("auto-post-button");
  if (button) { button.disabled = true; }
  form.submit();
})();
