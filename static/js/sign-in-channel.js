/* Tabs of this browser tell each other about sign-ins: a BroadcastChannel, or storage events
   where there is none. Nothing secret is sent: a sign-in number, a time, a masked address. */
(function () {
  'use strict';
  var NAME = 'clientgate-sign-in';
  var listeners = [];
  var channel = null;

  function deliver(message) {
    if (!message || typeof message.kind !== 'string') return;
    listeners.forEach(function (listener) { listener(message); });
  }

  if ('BroadcastChannel' in window) {
    channel = new BroadcastChannel(NAME);
    channel.onmessage = function (event) { deliver(event.data); };
  } else {
    window.addEventListener('storage', function (event) {
      if (event.key !== NAME || !event.newValue) return;
      try { deliver(JSON.parse(event.newValue)); } catch (e) { /* not one of ours */ }
    });
  }

  window.ClientGateTabs = {
    post: function (message) {
      if (channel) {
        channel.postMessage(message);
        return;
      }
      try {
        // Set then remove: other tabs get the event, nothing stays in storage.
        localStorage.setItem(NAME, JSON.stringify({ nonce: Math.random(), kind: message.kind,
          signIn: message.signIn, sentAt: message.sentAt, destination: message.destination,
          channel: message.channel }));
        localStorage.removeItem(NAME);
      } catch (e) { /* storage switched off: the code page's polling still finds out */ }
    },
    listen: function (listener) { listeners.push(listener); }
  };
})();
