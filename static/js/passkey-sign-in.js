/* Login page: "Sign in with a passkey". Asks the server for a challenge, lets the browser
   find a passkey for this site (the person unlocks it with a fingerprint, face or PIN), sends
   the answer back, and goes where the server says. Without passkey support it says so. */
(function () {
  'use strict';
  var section = document.querySelector('[data-passkey-sign-in]');
  var P = window.ClientGatePasskeys;
  if (!section || !P) return;
  var form = section.querySelector('[data-passkey-form]');
  var button = section.querySelector('[data-passkey-button]');
  var message = document.getElementById('passkey-message');

  function say(text) {
    message.textContent = text;
    message.hidden = false;
  }

  if (!P.supported()) {
    button.disabled = true;
    say('This browser cannot use passkeys. Sign in with your email and password above instead.');
    return;
  }

  var csrf = form.querySelector('input[name=csrf_token]').value;

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    button.disabled = true;
    message.hidden = true;
    P.post(section.getAttribute('data-options-url'), { csrf_token: csrf })
      .then(function (answer) {
        if (answer[0] !== 200) throw new Error(answer[1].error || 'server');
        return navigator.credentials.get({ publicKey: P.requestOptions(answer[1].options) });
      })
      .then(function (credential) {
        return P.post(section.getAttribute('data-verify-url'),
                      { csrf_token: csrf, credential: P.credentialJSON(credential) });
      })
      .then(function (answer) {
        if (answer[1].redirect) { P.go(answer[1].redirect); return; }
        throw new Error(answer[1].error || 'server');
      })
      .catch(function (error) {
        button.disabled = false;
        say(error && error.name && error.name !== 'Error' ? P.failureWords(error, 'sign-in')
            : (error && error.message && error.message !== 'server' ? error.message
               : P.failureWords(null, 'sign-in')));
      });
  });
})();
