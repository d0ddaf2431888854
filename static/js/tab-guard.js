/* The single-tab guard, live. A code page announces its sign-in to the other tabs of this
   browser and says plainly, in its alert box, when its code stops working (a newer sign-in in
   another tab, window or browser, expiry, too many wrong codes). A login page says so the
   moment another tab starts a sign-in, before the client types anything. */
(function () {
  'use strict';
  var tabs = window.ClientGateTabs;
  var guard = document.getElementById('tab-guard');
  var codePage = document.querySelector('[data-code-page]');
  var loginPage = document.querySelector('[data-login-page]');
  var portalPage = document.querySelector('[data-portal-page]');

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  // Text only, never markup: the message holds data from the server and other tabs.
  function show(lines, action) {
    if (!guard) return null;
    var link = null;
    guard.textContent = '';
    lines.forEach(function (line, index) {
      guard.appendChild(element('p', index === 0 ? 'tab-guard-lead' : null, line));
    });
    if (action) {
      link = element('a', 'button button-primary', action.text);
      link.href = action.href;
      guard.appendChild(link);
    }
    return link;
  }

  if (portalPage && tabs) {
    tabs.post({ kind: 'signed-in' });
  }

  if (codePage) {
    var mine = parseInt(codePage.getAttribute('data-sign-in'), 10);
    var urls = {
      login: codePage.getAttribute('data-login-url'),
      code: codePage.getAttribute('data-code-url'),
      portal: codePage.getAttribute('data-portal-url'),
      forgot: codePage.getAttribute('data-forgot-url')
    };
    // "please tell us", with how when the firm has said (PORTAL_CONTACT).
    var tellUs = codePage.getAttribute('data-tell-us') || 'please tell us';
    var ended = false;
    var announced = [];  // sign-ins other tabs of this browser started

    var check = function () { document.dispatchEvent(new CustomEvent('signin:check')); };

    var endedMessage = function (data) {
      var sent = data.sent_at_local;
      var newer = data.newer;
      var again = { href: urls.login, text: 'Sign in again' };
      switch (data.status) {
        case 'superseded':
          if (newer && newer.channel === 'totp') {
            // A sign-in by authenticator app sent nothing: there is no code "sent to" anywhere.
            if (newer.here || announced.indexOf(newer.sign_in) !== -1) {
              return { title: 'This code no longer works', lines: [
                'Your ' + sent + ' code no longer works: you signed in again at ' +
                  newer.sent_at_local + ' in another tab.',
                'That sign-in asks for the code from your authenticator app.'
              ], action: { href: urls.code, text: 'Enter the code from your app' } };
            }
            return { title: 'This code no longer works', lines: [
              'Your ' + sent + ' code no longer works: a new sign-in was started at ' +
                newer.sent_at_local + ' in another browser or on another device.',
              'If it was you, enter the code from your authenticator app there. If it was ' +
                'not you, someone may know your password, so ' + tellUs + '.'
            ], action: { href: urls.login, text: 'Sign in again here' } };
          }
          if (newer && (newer.here || announced.indexOf(newer.sign_in) !== -1)) {
            return { title: 'This code no longer works', lines: [
              'Your ' + sent + ' code no longer works: you signed in again at ' +
                newer.sent_at_local + ' in another tab.',
              'That sent a new code to ' + newer.destination + '. Use the code sent at ' +
                newer.sent_at_local + '.'
            ], action: { href: urls.code, text: 'Enter the ' + newer.sent_at_local + ' code' } };
          }
          if (newer) {
            return { title: 'This code no longer works', lines: [
              'Your ' + sent + ' code no longer works: a new sign-in was started at ' +
                newer.sent_at_local + ' in another browser or on another device.',
              'That sent a new code to ' + newer.destination + '. If it was you, enter that ' +
                'code there. If it was not you, someone may know your password, so ' + tellUs + '.'
            ], action: { href: urls.login, text: 'Sign in again here' } };
          }
          return { title: 'This code no longer works', lines: [
            'Your ' + sent + ' code no longer works: a newer sign-in replaced it.'
          ], action: again };
        case 'expired':
          return { title: 'Your code has run out', lines: [
            'Your ' + sent + ' code stopped working at ' + data.expires_at_local +
              ': codes work for 10 minutes.'
          ], action: again };
        case 'locked':
          if (data.paused_until_local) {
            // The account is paused: signing in again would meet the same refusal.
            return { title: 'Signing in is paused', lines: [
              'For your safety, signing in to this account is paused until ' +
                data.paused_until_local + ', because of too many wrong passwords or codes.',
              // As templates/auth/_paused.html: a reset ends it only where codes come by email.
              codePage.getAttribute('data-reset-ends-pause') === 'yes'
                ? 'You can try again then, or set a new password now: the link we email you ' +
                  'ends the pause.'
                : 'You can try again then. If you have forgotten your password, you can set ' +
                  'a new one now.'
            ], action: { href: urls.forgot, text: 'Set a new password' } };
          }
          return { title: 'This sign-in has been stopped', lines: [
            'Too many wrong codes were entered, so we stopped this sign-in to keep your ' +
              'account safe.'
          ], action: again };
        case 'completed':
          return { title: 'This code has been used', lines: [
            'Your ' + sent + ' code has already been used to sign in, in another browser ' +
              'or on another device. Each code works only once.'
          ], action: again };
        case 'none':
          if (data.signed_in) {
            return { title: 'You are signed in', lines: [
              'You have signed in in another tab, so this page is no longer needed.'
            ], action: { href: urls.portal, text: 'Go to your portal' } };
          }
          return { title: 'This sign-in has ended', lines: [
            'There is no sign-in waiting for a code in this browser any more (perhaps you ' +
              'logged out in another tab).'
          ], action: again };
        default:
          return { title: 'This sign-in has ended', lines: [
            'Your ' + sent + ' code no longer works.'
          ], action: again };
      }
    };

    var end = function (data) {
      if (ended) return;
      ended = true;
      var message = endedMessage(data);
      var title = document.getElementById('code-title');
      var hadFocus = false;
      codePage.setAttribute('data-status', data.status);
      if (title) title.textContent = message.title;
      // The tab's name says it too, as the page does when loaded afresh ("<heading> – <portal>").
      var portal = document.title.indexOf(' \u2013 ');
      document.title = message.title + (portal >= 0 ? document.title.slice(portal) : '');
      var link = show(message.lines, message.action);
      // Only the heading and the alert stay: the form and notices belong to a dead code.
      Array.prototype.forEach.call(codePage.children, function (child) {
        if (child === title || child === guard) return;
        if (child.contains(document.activeElement)) hadFocus = true;
        child.hidden = true;
      });
      if (hadFocus && link) link.focus();
    };

    document.addEventListener('signin:status', function (event) {
      if (event.detail.status !== 'pending') end(event.detail);
    });

    if (tabs) {
      tabs.listen(function (message) {
        // Another tab's news is only a hint: the server's answer is what the page shows.
        if (message.kind === 'started') announced.push(message.signIn);
        if ((message.kind === 'started' && message.signIn !== mine) ||
            message.kind === 'signed-in') {
          check();
        }
      });
      if (codePage.getAttribute('data-status') === 'pending') {
        tabs.post({ kind: 'started', signIn: mine,
                    sentAt: codePage.getAttribute('data-sent-at'),
                    destination: codePage.getAttribute('data-destination'),
                    channel: codePage.getAttribute('data-channel') });
      }
    }
  }

  if (loginPage && tabs) {
    var serverGuard = document.querySelector('[data-guard="pending"]');
    var known = serverGuard ? parseInt(serverGuard.getAttribute('data-sign-in'), 10) : null;
    var submit = loginPage.querySelector('[data-login-form] button[type=submit]');
    // As on the server's warning: entering the code is the main way on, not a new sign-in.
    var demote = function () {
      if (!submit || serverGuard) return;
      submit.classList.remove('button-primary');
      submit.classList.add('button-secondary');
      submit.textContent = 'Send me a new code';
    };
    tabs.listen(function (message) {
      if (message.kind === 'started' && message.signIn !== known) {
        known = message.signIn;
        if (serverGuard) serverGuard.hidden = true;  // its time and address are out of date
        if (message.channel === 'totp') {
          // Nothing was sent, so nothing is lost by signing in here: no warning, only the way on.
          show([
            'You have just started signing in in another tab, with the code from your ' +
              'authenticator app.',
            'You can enter the code your app shows there, or here.'
          ], { href: loginPage.getAttribute('data-code-url'), text: 'Enter the code from your app' });
          return;
        }
        demote();
        show([
          'You have just started signing in in another tab: we sent a code at ' +
            message.sentAt + ' to ' + message.destination + '.',
          'Enter that code instead of signing in again here. If you sign in again, we will ' +
            'send a new code and the ' + message.sentAt + ' one will stop working.'
        ], { href: loginPage.getAttribute('data-code-url'), text: 'Enter that code' });
      } else if (message.kind === 'signed-in') {
        if (serverGuard) serverGuard.hidden = true;
        show(['You have signed in in another tab.'],
             { href: loginPage.getAttribute('data-portal-url'), text: 'Go to your portal' });
      }
    });
  }
})();
