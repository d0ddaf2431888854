/* After a code that did not work (not right, an older one, the wrong length), typing it again
   is the next step: the cursor waits in the code box, beside the message that says why. A page
   loaded afresh is left alone, so the client reads where the code went first. */
(function () {
  'use strict';
  var form = document.querySelector('[data-code-form][data-again]');
  var box = form && form.querySelector('input[name=code]');
  if (box && !box.closest('[hidden]')) box.focus();
})();
