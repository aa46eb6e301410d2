// Submits the SAML auto-post form (the response to a learning platform, or
// a logout message). Without JavaScript the visible button does the same.
(function () {
  "use strict";
  var form = document.getElementById("saml-post-form");
  if (!form) { return; }
  var button = document.getElementById("saml-post-button");
  if (button) { button.disabled = true; }
  form.submit();
})();
