/* Sign-in pages must never come back stale: a page restored from the back-forward cache is
   reloaded from the server, which knows whether a code is already on its way. */
(function () {
  'use strict';
  // Any sign-in page but the code page ends the code page's "leaving" (static/js/back-guard.js):
  // Forward from here to the code page must stay there.
  if (!document.querySelector('[data-code-page]')) {
    try { sessionStorage.removeItem('clientgate-leaving-code-page'); } catch (e) { /* off */ }
  }
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
