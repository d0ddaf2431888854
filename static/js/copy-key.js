/* Account page, authenticator app setup: a "Copy the key" button, for someone setting the app
   up on the phone in their hand. Without a clipboard this browser lets us use, the button
   stays hidden and the key is there to type. */
(function () {
  'use strict';
  if (!navigator.clipboard || !window.isSecureContext) return;
  document.querySelectorAll('[data-copy-from]').forEach(function (button) {
    var source = document.getElementById(button.getAttribute('data-copy-from'));
    var status = button.parentNode.querySelector('[data-copy-status]');
    if (!source) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        if (status) status.textContent = 'Copied. Now paste it into your authenticator app.';
      }, function () {
        if (status) status.textContent = 'This browser did not let us copy it: please type ' +
          'it into the app instead.';
      });
    });
  });
})();
