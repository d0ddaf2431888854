/* Sign-in pages must never come back stale: a page restored from the back-forward cache is
   reloaded from the server, which knows whether a code is already on its way. */
(function () {
  'use strict';
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) {
      window.location.reload();
    }
  });
})();
