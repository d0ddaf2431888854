/* Account pages reached at a part of the page (/account/security#passkeys, ?remove=1#passkey-1,
   #authenticator-app, /account/devices#trusted-devices): where the keyboard, and a screen
   reader, start.

   A browser skips `autofocus` when the address names an element (the HTML standard's "flush
   autofocus candidates"), so the password box asked for again, its refusal ("That password is
   not right") and a warning were left unfocused and unread, with the focus on <body>. And a
   notice flashed at the top of the page ("We have removed the passkey ...") was out of sight
   above the section the page scrolled to, and never read out.

   So: the page's notices move to the top of that section, under its heading, and the focus goes
   to what `autofocus` names, else to the first notice. Without JavaScript the page is as the
   server made it. */
(function () {
  'use strict';
  var id = '';
  try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (e) { return; }
  var target = id && document.getElementById(id);
  if (!target) return;

  var flashes = document.querySelector('main > .flashes');
  if (flashes) {
    var section = target.closest('section') || target;
    var heading = section.querySelector(':scope > h1, :scope > h2');
    if (heading) heading.insertAdjacentElement('afterend', flashes);
    else section.insertAdjacentElement('afterbegin', flashes);
  }

  var first = document.querySelector('main [autofocus]');
  if (!first && flashes) {
    first = flashes.querySelector('.notice');
    if (first) first.setAttribute('tabindex', '-1');
  }
  if (!first) return;
  function arrive() {
    if (document.activeElement === document.body || !document.activeElement) first.focus();
  }
  // Chromium, as it goes to the #part named, then takes the focus away once, while the page is
  // still loading: give it back then, and only then (not when the client later clicks away).
  var loading = true;
  first.addEventListener('blur', function () {
    if (loading) window.setTimeout(arrive, 0);
  });
  window.addEventListener('load', function () {
    window.setTimeout(function () { arrive(); loading = false; }, 0);
  });
  arrive();
})();
