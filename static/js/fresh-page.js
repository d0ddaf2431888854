/* Sign-in pages must never come back stale: a page restored from the back-forward cache is
   reloaded from the server, which knows whether a code is already on its way. */
(function () {
  'use strict';
  // Any sign-in page but the code page ends the code page's "leaving" (static/js/back-guard.js):
  // Forward from here to the code page must stay there.
  if (!document.querySelector('[data-code-page]')) {
    try { sessionStorage.removeItem('clientgate-leaving-code-page'); } catch (e) { /* off */ }
  }
  // A page that answers a posted form (a wrong password is shown on the page the form was
  // sent to) becomes, in the tab's history, the plain address it names: Back to it, "Go back
  // anyway" or a reload ask the server afresh, not Chromium's "Confirm Form Resubmission"
  // (ERR_CACHE_MISS) page. For a page that came by a plain GET this changes nothing.
  try { history.replaceState(history.state, '', window.location.href); } catch (e) { /* old */ }
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
