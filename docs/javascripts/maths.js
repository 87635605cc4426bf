// Typesets the maths of a page with the KaTeX bundled in javascripts/katex/ (no CDN: the docs render offline).
// pymdownx.arithmatex (generic mode) wraps inline maths as <span class="arithmatex">\( ... \)</span> and display
// maths as <div class="arithmatex">\[ ... \]</div>; only those elements are touched, so a "$" in prose or code
// is never read as maths.
(function () {
  "use strict";

  function typeset(root) {
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      var text = el.textContent.trim();
      var display = text.startsWith("\\[");
      if (!(display || text.startsWith("\\("))) {
        return; // already typeset (Material can hand the same page over twice)
      }
      var tex = text.slice(2, -2);
      // throwOnError: false shows a formula KaTeX cannot parse in red instead of leaving the page half-rendered
      katex.render(tex, el, { displayMode: display, throwOnError: false });
    });
  }

  // Material for MkDocs publishes every page load (instant navigation included) on document$
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { typeset(document.body); });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { typeset(document.body); });
  } else {
    typeset(document.body);
  }
})();
