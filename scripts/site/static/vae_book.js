/* The VAE Book's site script (shipped by scripts/vae_book_site.py into _static/, loaded on every page
   before MathJax, which is deferred).

   1. Opened from disk (file://), MathJax 4's speech worker cannot start in Chrome, and MathJax would
      wait for it forever: speech and Braille are turned off there (they work from any web server).
   2. A display equation that does not fit even after MathJax's line breaking scrolls inside its own
      box: the box gets the class vae-more-right / vae-more-left while there is more to see on that
      side, and vae_book.css draws a shadow there. */
(function () {
  "use strict";
  if (location.protocol === "file:" && window.MathJax) {
    var mj = window.MathJax;
    mj.options = mj.options || {};
    mj.options.menuOptions = mj.options.menuOptions || {};
    var settings = mj.options.menuOptions.settings || {};
    settings.speech = false;
    settings.braille = false;
    mj.options.menuOptions.settings = settings;
  }

  var SELECTOR = 'div.math mjx-container[display="true"]';

  function mark(el) {
    var max = el.scrollWidth - el.clientWidth;
    el.classList.toggle("vae-more-right", max > 1 && el.scrollLeft < max - 1);
    el.classList.toggle("vae-more-left", max > 1 && el.scrollLeft > 1);
  }

  function watch() {
    var boxes = document.querySelectorAll(SELECTOR);
    var resize = window.ResizeObserver ? new ResizeObserver(function (entries) {
      entries.forEach(function (e) { mark(e.target); });
    }) : null;
    boxes.forEach(function (el) {
      if (el.dataset.vaeWatched) { mark(el); return; }
      el.dataset.vaeWatched = "1";
      el.addEventListener("scroll", function () { mark(el); }, {passive: true});
      if (resize) resize.observe(el);
      mark(el);
    });
  }

  function start() {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(watch);
    }
  }

  if (document.readyState === "complete") start();
  else window.addEventListener("load", start);
})();
