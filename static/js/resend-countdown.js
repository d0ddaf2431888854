/* "Send the code again": count the cooldown down on the page, and keep it in step with the
   server through the status polls. Without JavaScript the server says how long to wait. */
(function () {
  'use strict';
  var button = document.querySelector('[data-resend-button]');
  if (!button) return;
  // "Send by email instead" is a resend too: the same cooldown holds for it.
  var buttons = [button].concat(Array.prototype.slice.call(
    document.querySelectorAll('[data-resend-switch]')));
  var hint = document.querySelector('[data-resend-hint]');
  var left = parseInt(button.getAttribute('data-left'), 10);
  var deadline = 0;
  var ticker = null;

  function secondsToWait() {
    return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  }

  function say(message) {
    if (hint && hint.textContent !== message) hint.textContent = message;
  }

  // aria-disabled, not disabled: a disabled button leaves the Tab order, so a keyboard or
  // screen-reader user would not find it during the wait, nor hear (aria-describedby) how long.
  function enable(yes) {
    buttons.forEach(function (each) {
      if (yes) each.removeAttribute('aria-disabled');
      else each.setAttribute('aria-disabled', 'true');
    });
  }

  function waiting(each) {
    return each.getAttribute('aria-disabled') === 'true';
  }

  function render() {
    var seconds = secondsToWait();
    if (left <= 0) {
      enable(false);
      say('We have sent this code as many times as we can.');
    } else if (seconds > 0) {
      enable(false);
      say('You can ask again in ' + seconds + (seconds === 1 ? ' second.' : ' seconds.'));
    } else {
      enable(true);
      say('We will send the same code, not a new one. ' + left + ' left.');
    }
    if (seconds === 0 && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  function countFrom(seconds) {
    deadline = Date.now() + seconds * 1000;
    if (seconds > 0 && !ticker) ticker = setInterval(render, 1000);
    render();
  }

  document.addEventListener('signin:status', function (event) {
    var data = event.detail;
    if (typeof data.resends_left === 'number') left = data.resends_left;
    if (typeof data.resend_wait === 'number') countFrom(data.resend_wait);
  });

  buttons.forEach(function (each) {
    if (!each.form) return;
    each.form.addEventListener('submit', function (event) {
      if (waiting(each)) {
        event.preventDefault();  // the hint beside it already says how long
        return;
      }
      // One press, one resend: a second tap while the page loads would only be refused.
      setTimeout(function () { enable(false); }, 0);
    });
  });
  countFrom(parseInt(button.getAttribute('data-wait'), 10) || 0);
})();
