/* Back from the code page: going back and signing in again is the commonest way a code on its
   way is lost. The first Back press stays on this page and says why; a second one (or "Go
   back anyway") leaves. A typed but unsent code also asks before the page is left. */
(function () {
  'use strict';
  var page = document.querySelector('[data-code-page]');
  if (!page || page.getAttribute('data-status') !== 'pending' || !window.history.pushState) return;
  var box = document.getElementById('back-warning');
  var field = page.querySelector('input[name=code]');
  var mine = page.getAttribute('data-sign-in');
  var sentAt = page.getAttribute('data-sent-at');
  var leaving = false;
  // Each code typed loads this page again, a new entry in the tab's history: Back from a page
  // that told of a wrong code meets the earlier copy of this page first. Once the client has
  // chosen to leave, the mark (kept in this tab for a minute) lets those copies pass them on
  // back. fresh-page.js forgets it on any other sign-in page.
  var LEAVING = 'clientgate-leaving-code-page';

  function markLeaving() {
    try { sessionStorage.setItem(LEAVING, mine + ' ' + Date.now()); } catch (e) { /* off */ }
  }
  function unmarkLeaving() {
    try { sessionStorage.removeItem(LEAVING); } catch (e) { /* storage switched off */ }
  }
  function leftEarlier() {
    try {
      var mark = (sessionStorage.getItem(LEAVING) || '').split(' ');
      return mark[0] === mine && Date.now() - Number(mark[1]) < 60000;
    } catch (e) { return false; }
  }
  function cameBack() {
    var entry = window.performance && performance.getEntriesByType &&
      performance.getEntriesByType('navigation')[0];
    return entry ? entry.type === 'back_forward' : false;
  }

  function pending() { return page.getAttribute('data-status') === 'pending'; }
  // No code box: the only message could not be sent, so there is no code to keep.
  function nothingToKeep() { return !field || field.closest('[hidden]') !== null; }
  // An authenticator app's sign-in sent nothing: signing in again loses no code (the app's
  // works for any sign-in), so Back goes back, to the login page that offers this one again.
  var byApp = page.getAttribute('data-channel') === 'totp';

  function arm() {
    if (!history.state || history.state.codePage !== mine) {
      // One extra entry for this page: Back lands on it first, and we can explain.
      history.pushState({ codePage: mine }, '', window.location.href);
    }
  }

  function button(text, className, onClick) {
    var node = document.createElement('button');
    node.type = 'button';
    node.className = 'button ' + className;
    node.textContent = text;
    node.addEventListener('click', onClick);
    return node;
  }

  function warn() {
    if (!box) return;
    box.textContent = '';
    var lead = document.createElement('p');
    lead.className = 'tab-guard-lead';
    lead.textContent = 'Going back will not bring a new code. The code we sent at ' + sentAt +
      ' still works: enter it on this page.';
    var more = document.createElement('p');
    more.textContent = 'If you go back and sign in again, we will send a new code and the ' +
      sentAt + ' one will stop working.';
    var row = document.createElement('div');
    row.className = 'button-row';
    var stay = button('Stay and enter my code', 'button-primary', function () {
      box.textContent = '';
      unmarkLeaving();
      arm();
      if (field) field.focus();
    });
    row.appendChild(stay);
    row.appendChild(button('Go back anyway', 'button-secondary', function () {
      leaving = true;
      history.back();
    }));
    box.appendChild(lead);
    box.appendChild(more);
    box.appendChild(row);
    // The question takes the focus, as a dialog would: a keyboard answers it where it is (Enter
    // stays, Tab then Enter goes back, Escape stays), and the lead is read out with the button.
    lead.id = 'back-warning-lead';
    stay.setAttribute('aria-describedby', 'back-warning-lead');
    stay.focus();
    markLeaving();  // "Go back anyway", or Back pressed again, leaves
  }

  window.addEventListener('popstate', function (event) {
    var state = event.state;
    if (state && state.codePage === mine) {
      if (box) box.textContent = '';  // Forward again: nothing to warn about
      unmarkLeaving();
    } else if (leaving) {
      return;
    } else if (pending() && !nothingToKeep() && !byApp) {
      warn();
    } else {
      history.back();  // no code to keep: nothing to warn about, so Back goes on back
    }
  });

  if (box) {
    box.addEventListener('keydown', function (event) {
      if (event.key !== 'Escape' || !box.firstChild) return;
      event.preventDefault();
      box.querySelector('button').click();  // Escape: stay, as "Stay and enter my code"
    });
  }

  document.addEventListener('submit', function () { leaving = true; }, true);
  window.addEventListener('beforeunload', function (event) {
    // Only a code typed but not sent is worth a browser question.
    if (leaving || !pending() || nothingToKeep() || !field.value.trim()) return;
    event.preventDefault();
    event.returnValue = '';
  });
  window.addEventListener('pageshow', function () { leaving = false; });

  if (cameBack() && leftEarlier()) {
    // An earlier copy of this page, met on the way back: on back, past its own extra entry.
    leaving = true;
    history.go(history.state && history.state.codePage === mine ? -2 : -1);
    return;
  }
  unmarkLeaving();
  arm();
})();
