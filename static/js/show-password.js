/* Choosing a new password (reset, invitation, change password): a "Show password" button
   under the new password, so someone on a phone can check what they typed. It shows the new
   password and its second copy, never the current password (autocomplete="current-password").
   Without JavaScript there is no button and the boxes stay as they are.

   Before the form is sent, and when the page is left, both are password boxes again: password
   managers offer to save a password only from one, and a browser keeps what was typed in a
   text box in its autofill history. */
(function () {
  'use strict';
  document.querySelectorAll('form[data-show-password]').forEach(function (form) {
    var boxes = Array.prototype.slice.call(
      form.querySelectorAll('input[type=password][autocomplete="new-password"]'));
    if (!boxes.length) return;

    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'button button-secondary show-password';
    button.setAttribute('aria-controls', boxes.map(function (box) { return box.id; }).join(' '));
    // Said to screen readers when it changes; the button's own name says what a press does.
    var status = document.createElement('p');
    status.className = 'visually-hidden';
    status.setAttribute('role', 'status');

    function show(visible) {
      boxes.forEach(function (box) { box.type = visible ? 'text' : 'password'; });
      button.textContent = visible ? 'Hide password' : 'Show password';
    }

    boxes.forEach(function (box) {
      // Shown as text, a phone keyboard would capitalise and "correct" the password as it is
      // typed, and a spell checker might send it away to be checked.
      box.setAttribute('autocapitalize', 'none');
      box.setAttribute('autocorrect', 'off');
      box.setAttribute('spellcheck', 'false');
    });
    button.addEventListener('click', function () {
      var visible = boxes[0].type === 'password';
      show(visible);
      status.textContent = visible ? 'Your password is shown.' : 'Your password is hidden.';
    });
    form.addEventListener('submit', function () { show(false); });
    window.addEventListener('pagehide', function () { show(false); });

    show(false);
    boxes[0].insertAdjacentElement('afterend', button);
    button.insertAdjacentElement('afterend', status);
  });
})();
