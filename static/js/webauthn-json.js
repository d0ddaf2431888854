/* Passkeys: turn the server's JSON options into what navigator.credentials wants, and the
   browser's answer back into JSON (py_webauthn's format). Used by passkey-sign-in.js and
   passkey-add.js; uses the browser's own parse/toJSON where it has them. */
(function () {
  'use strict';

  function toBuffer(text) {
    var base64 = text.replace(/-/g, '+').replace(/_/g, '/');
    while (base64.length % 4) base64 += '=';
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var raw = '';
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    if (window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === 'function') return JSON.stringify(credential.toJSON());
    var r = credential.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify({
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      response: response, clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined
    });
  }

  /* POST form fields to `url`; resolves to [status, parsed JSON]. */
  function post(url, fields) {
    var body = new URLSearchParams();
    Object.keys(fields).forEach(function (name) { body.append(name, fields[name]); });
    return fetch(url, {
      method: 'POST', body: body, credentials: 'same-origin',
      headers: { 'Accept': 'application/json' }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return [response.status, data];
      });
    });
  }

  /* What to tell a person when the browser's passkey prompt ends without a passkey. */
  function failureWords(error, action) {
    if (error && error.name === 'NotAllowedError') {
      return 'The passkey was not used: the request was cancelled or took too long. ' +
        'You can try again' + (action === 'sign-in' ? ', or sign in with your email and password.' : '.');
    }
    if (error && error.name === 'InvalidStateError') {
      return 'This device already has a passkey for your account.';
    }
    if (error && error.name === 'SecurityError') {
      return 'This browser refused to use a passkey on this page. Please open the website at its usual address.';
    }
    return 'Something went wrong with the passkey. ' +
      (action === 'sign-in' ? 'Please sign in with your email and password.' : 'Please try again.');
  }

  /* Go where the server says; a new hash on this same page would not load it again. */
  function go(url) {
    var target = new URL(url, window.location.href);
    if (target.pathname === window.location.pathname && target.search === window.location.search) {
      window.location.hash = target.hash;
      window.location.reload();
    } else {
      window.location.assign(target.href);
    }
  }

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && window.fetch);
  }

  window.ClientGatePasskeys = {
    creationOptions: creationOptions, requestOptions: requestOptions,
    credentialJSON: credentialJSON, post: post, failureWords: failureWords, supported: supported,
    go: go
  };
})();
