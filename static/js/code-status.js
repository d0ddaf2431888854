/* Code page: ask /login/code/status every few seconds for the delivery's progress and the
   sign-in's fate, and show it without a reload. Other modules hear each answer as a
   "signin:status" event and can ask for an early look with a "signin:check" event. */
(function () {
  'use strict';
  var page = document.querySelector('[data-code-page]');
  if (!page || !window.fetch || page.getAttribute('data-status') !== 'pending') return;

  var url = page.getAttribute('data-status-url');
  var EVERY_VISIBLE = 2500;  // "within a few seconds" of a change elsewhere
  var EVERY_HIDDEN = 15000;  // a hidden tab checks again the moment it is shown
  var MOST = 60000;
  var timer = null;
  var failures = 0;
  var busy = false;
  var stopped = false;
  var unconfirmed = false;

  var box = document.getElementById('delivery-status');
  var text = document.getElementById('delivery-text');
  var dot = box ? box.querySelector('.delivery-dot') : null;
  var title = document.getElementById('code-title');

  function wait() {
    var base = document.visibilityState === 'hidden' ? EVERY_HIDDEN : EVERY_VISIBLE;
    return Math.min(MOST, base * Math.pow(2, failures));
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (!stopped) timer = setTimeout(poll, ms);
  }

  function showDelivery(delivery) {
    if (!box || !text || !delivery) return;
    // Only a real change is written, so screen readers hear each step once.
    if (text.textContent !== delivery.text) text.textContent = delivery.text;
    if (box.getAttribute('data-state') !== delivery.state) {
      box.setAttribute('data-state', delivery.state);
      if (dot) dot.className = 'delivery-dot delivery-' + delivery.state;
      showLead(delivery.state);
      showWhatToDo(delivery.state === 'failed');
    }
    showCause(delivery.mailbox_full === true, delivery.refused_by_policy === true);
  }

  // The page's first line says the message was sent only once it was: while it is tried again
  // (the mail server was down, the mailbox full) it says we are still trying, and the advice
  // to look in the junk folder waits (data-unless-retrying); once given up, that we tried.
  function showLead(state) {
    var retrying = state === 'retrying';
    var lead = state === 'failed' ? 'failed' : retrying ? 'retrying' : 'sent';
    page.querySelectorAll('[data-lead]').forEach(function (el) {
      var hide = el.getAttribute('data-lead') !== lead;
      if (el.hidden !== hide) el.hidden = hide;
    });
    page.querySelectorAll('[data-unless-retrying]').forEach(function (el) {
      if (el.hidden !== retrying) el.hidden = retrying;
    });
  }

  // The client's mailbox is full: the page's words for that (delete some emails, or contact
  // us) in place of "look in your junk folder" and "the address may be wrong". Or a mail
  // server's security rules turned our email away: not "the address may be wrong" either, but
  // that it is not the client's address, and to contact us. A part may answer to both
  // (data-unless-full data-unless-policy): it shows only when neither hides it.
  function showCause(full, policy) {
    page.querySelectorAll('[data-if-full], [data-unless-full], [data-if-policy], ' +
                          '[data-unless-policy]').forEach(function (el) {
      var hide = (el.hasAttribute('data-if-full') && !full) ||
                 (el.hasAttribute('data-unless-full') && full) ||
                 (el.hasAttribute('data-if-policy') && !policy) ||
                 (el.hasAttribute('data-unless-policy') && policy);
      if (el.hidden !== hide) el.hidden = hide;
    });
  }

  // A message that could not be sent: say what to do instead of "it can take a few minutes".
  // When it was the only one, no code can have come: the code box goes too (the page marks
  // it data-unless-failed), and the heading says so, as the page does when loaded afresh.
  function showWhatToDo(failed) {
    var hadFocus = false;
    page.querySelectorAll('[data-when-failed]').forEach(function (el) { el.hidden = !failed; });
    page.querySelectorAll('[data-unless-failed]').forEach(function (el) {
      if (failed && el.contains(document.activeElement)) hadFocus = true;
      el.hidden = failed;
    });
    var heading = title && title.getAttribute(failed ? 'data-title-failed' : 'data-title-waiting');
    if (heading && title.textContent !== heading) {
      title.textContent = heading;
      // The tab's name says it too, as the page does when loaded afresh ("<heading> – <portal>").
      var portal = document.title.indexOf(' \u2013 ');
      document.title = heading + (portal >= 0 ? document.title.slice(portal) : '');
    }
    if (hadFocus) {
      // The first link or button that shows (the notice holds words for other cases, hidden).
      var next = Array.prototype.find.call(
        document.querySelectorAll('#delivery-failed a, #delivery-failed button'),
        function (el) { return !el.closest('[hidden]'); });
      if (next) next.focus();
    }
  }

  function poll() {
    if (stopped || busy) return;
    busy = true;
    fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin',
                 cache: 'no-store' })
      .then(function (response) {
        // 404 is an answer too: this browser has no sign-in any more.
        if (response.ok || response.status === 404) return response.json();
        throw new Error('status ' + response.status);
      })
      .then(function (data) {
        failures = 0;
        if (data.status === 'pending') {
          unconfirmed = false;
          showDelivery(data.delivery);
        } else if (!unconfirmed) {
          // An answer to a request sent just before another tab's sign-in changed the
          // cookie can be out of date: ask once more before the page says it has ended.
          unconfirmed = true;
          return;
        } else {
          stopped = true;
        }
        document.dispatchEvent(new CustomEvent('signin:status', { detail: data }));
      })
      .catch(function () { failures = Math.min(failures + 1, 5); })
      .then(function () {
        busy = false;
        schedule(unconfirmed && !stopped ? 300 : wait());
      });
  }

  document.addEventListener('signin:check', function () { schedule(0); });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') schedule(0);
  });
  schedule(1000);
})();
