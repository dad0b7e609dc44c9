// The PIN notice's "Print" button (no inline script: the page's CSP forbids it).
"use strict";
(function () {
  const button = document.getElementById("print-button");
  if (button) button.addEventListener("click", function () { window.print(); });
})();
