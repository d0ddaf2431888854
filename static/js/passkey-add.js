/* Account page: "Add a passkey". Sends the name (and the password, when asked) for a
   challenge, lets the browser make a passkey (unlocked by fingerprint, face or PIN), sends it
   back, and reloads the page, which then lists it. Without passkey support it says so, on
   the first step already when the page asks for the password first. */
(function () {
  'use strict';
  var form = document.querySelector('[data-passkey-add]');
  var P = window.ClientGatePasskeys;
  if (!form || !P) return;
  var button = form.querySelector('[data-passkey-add-button]');
  var message = document.getElementById('passkey-add-message');

  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }

  if (!P.supported()) {
    button.disabled = true;
    say('This browser cannot make passkeys. Try the browser on your phone, or an up-to-date ' +
        'Chrome, Safari, Edge or Firefox. You can still sign in with your password and a code.');
    return;
  }
  // After ten minutes the page first asks for the password (a plain GET to the same page);
  // only that second step makes the passkey.
  if (!form.hasAttribute('data-options-url')) return;

  function field(name) {
    var input = form.querySelector('[name=' + name + ']');
    return input ? input.value : '';
  }

  // While it works the button says so with aria-disabled, not `disabled`: a disabled button
  // loses the focus to <body>, and after a refusal (a fingerprint prompt cancelled) the keyboard
  // would start again from the top of the page, away from the message and the button.
  var busy = false;
  function working(now) {
    busy = now;
    if (now) button.setAttribute('aria-disabled', 'true');
    else button.removeAttribute('aria-disabled');
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) return;
    working(true);
    message.hidden = true;
    var csrf = field('csrf_token');
    P.post(form.getAttribute('data-options-url'),
           { csrf_token: csrf, name: field('name'), password: field('password') })
      .then(function (answer) {
        if (answer[1].redirect) { P.go(answer[1].redirect); return null; }
        if (answer[0] !== 200) throw new Error(answer[1].error || 'server');
        return navigator.credentials.create({ publicKey: P.creationOptions(answer[1].options) });
      })
      .then(function (credential) {
        if (!credential) return null;
        return P.post(form.getAttribute('data-verify-url'),
                      { csrf_token: csrf, credential: P.credentialJSON(credential) });
      })
      .then(function (answer) {
        if (!answer) return;
        if (answer[1].redirect) { P.go(answer[1].redirect); return; }
        throw new Error(answer[1].error || 'server');
      })
      .catch(function (error) {
        working(false);
        say(error && error.name && error.name !== 'Error' ? P.failureWords(error, 'add')
            : (error && error.message && error.message !== 'server' ? error.message
               : P.failureWords(null, 'add')));
      });
  });
})();
