// Kira: live updates. Pages work without this script; it adds the live
// balance and job progress (Server-Sent Events from /app/events), a preview
// of the chosen upload, and the cost of the chosen number of images.
(function () {
  "use strict";
  var doc = document;
  var numbers = new Intl.NumberFormat("en-US");
  var serverOffset = (Date.parse(doc.body.dataset.now) || Date.now()) - Date.now();
  var lastBalanceAt = 0;

  function each(sel, fn, root) { Array.prototype.forEach.call((root || doc).querySelectorAll(sel), fn); }
  function announce(text) {
    var live = doc.getElementById("live-status");
    if (live) { live.textContent = text; }
  }

  // Pointer clicks on an action choose it at once; keyboard users move
  // through the choices and press Continue.
  each("form[data-autosubmit] input[type=radio]", function (input) {
    input.addEventListener("click", function (e) {
      if (e.detail > 0) { input.form.submit(); }
    });
  });

  // Show the image picked for upload before it is sent.
  each("form[data-upload]", function (form) {
    var input = form.querySelector("input[type=file]");
    if (!input) { return; }
    input.addEventListener("change", function () {
      var old = form.querySelector(".upload-preview");
      if (old) { old.remove(); }
      if (!input.files || !input.files[0]) { return; }
      var img = doc.createElement("img");
      img.className = "upload-preview";
      img.alt = "Preview of " + input.files[0].name;
      img.src = URL.createObjectURL(input.files[0]);
      form.insertBefore(img, input.nextSibling);
    });
  });

  // The cost follows the number of images.
  each("form[data-unit-price]", function (form) {
    var unit = parseInt(form.dataset.unitPrice, 10);
    var qty = form.querySelector("[data-quantity]");
    if (!qty) { return; }
    qty.addEventListener("change", function () {
      each("[data-cost]", function (el) { el.textContent = numbers.format(unit * parseInt(qty.value, 10)); }, form);
    });
  });

  // A comment survives a send that did not go through: it is kept in
  // this tab when its form is sent, put back when the page says it was
  // not sent (data-draft="failed"), and dropped once it was
  // (data-draft="sent").
  each("form[data-draft]", function (form) {
    var area = form.querySelector("textarea");
    var key = "draft:" + form.getAttribute("action");
    try {
      var store = window.sessionStorage;
      if (!area || !store) { return; }
      if (form.dataset.draft === "sent") { store.removeItem(key); }
      if (form.dataset.draft === "failed" && store.getItem(key) !== null) { area.value = store.getItem(key); }
      form.addEventListener("submit", function () {
        try { store.setItem(key, area.value); } catch (e) { /* storage full or off */ }
      });
    } catch (e) { /* storage off */ }
  });

  // Remember regions the user is editing, so a refresh does not undo it.
  doc.addEventListener("input", function (e) {
    var region = e.target.closest && e.target.closest("[data-region]");
    if (region) { region.dataset.dirty = "1"; }
  });

  // Countdowns to the next free credits.
  function countdowns() {
    var now = Date.now() + serverOffset;
    each("[data-countdown]", function (el) {
      var ms = Date.parse(el.dataset.countdown) - now;
      if (isNaN(ms)) { return; }
      var min = Math.floor(ms / 60000);
      var h = Math.floor(min / 60), m = min % 60;
      el.textContent = ms < 60000 ? "less than a minute" : h >= 48 ? Math.floor(h / 24) + " days" :
        h > 0 ? (m > 0 ? h + " h " + m + " min" : h + " h") : m + " min";
    });
  }
  setInterval(countdowns, 30000);

  // Regions marked data-refresh-on="balance" or "job:<id>" are fetched
  // again and swapped in place when such an event arrives.
  var pending = {};
  var timer = null;
  function refresh(key) {
    each("[data-refresh-on]", function (el) {
      if ((" " + el.dataset.refreshOn + " ").indexOf(" " + key + " ") >= 0) {
        pending[el.dataset.region] = true;
      }
    });
    if (!timer && Object.keys(pending).length) { timer = setTimeout(swap, 150); }
  }
  function swap() {
    var names = Object.keys(pending);
    pending = {};
    timer = null;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        names.forEach(function (name) {
          var sel = '[data-region="' + name + '"]';
          var old = doc.querySelector(sel);
          if (!old) { return; }
          var next = fresh.querySelector(sel);
          if (old.dataset.dirty || old.contains(doc.activeElement)) {
            if (next) { return; }
          }
          if (!next) { old.remove(); return; }
          var was = old.dataset.status, now = next.dataset.status;
          var said = old.textContent;
          old.replaceWith(doc.importNode(next, true));
          if (next.hasAttribute("data-announce") && next.textContent !== said) {
            announce(next.textContent.replace(/\s+/g, " ").trim());
          }
          if (was && now && was !== now) {
            var badge = doc.querySelector("[data-job-status]");
            announce("Status: " + (badge ? badge.textContent : now));
          }
        });
        countdowns();
      })
      .catch(function () {});
  }

  // The low-balance banner: when the live balance puts the account on the
  // other side of its line (or changes what the banner says), fetch the
  // banner again.
  function balanceAlert(b) {
    each("[data-balance-alert]", function (el) {
      var image = b.available_by_category && typeof b.available_by_category.image === "number" ?
        b.available_by_category.image : b.available;
      var cheapest = parseInt(el.dataset.imageCredits, 10) || 0;
      var line = parseInt(el.dataset.threshold, 10) || 0;
      var state = cheapest > 0 && image < cheapest ? "depleted" : image < line ? "low" : "";
      if (state !== el.dataset.balanceAlert || (state && el.dataset.available !== String(image))) {
        el.dataset.available = String(image);
        refresh("balance-alert");
      }
    });
  }

  if (!window.EventSource) { return; }
  var source = new EventSource("/app/events");
  source.addEventListener("open", function () {
    // Whatever changed between rendering the page and (re)connecting may
    // not be replayed: catch up on jobs that were still running. (The
    // stream itself starts with a fresh balance.)
    each("[data-job]", function (el) {
      if (el.dataset.status === "queued" || el.dataset.status === "running") { refresh("job:" + el.dataset.job); }
    });
  });
  source.addEventListener("balance", function (e) {
    var b = JSON.parse(e.data);
    var at = Date.parse(b.as_of) || 0;
    if (at < lastBalanceAt) { return; }
    lastBalanceAt = at;
    each('[data-live="available"]', function (el) { el.textContent = numbers.format(b.available); });
    each('[data-live="held"]', function (el) { el.textContent = numbers.format(b.held); });
    announce("Balance: " + numbers.format(b.available) + " credits");
    refresh("balance");
    balanceAlert(b);
  });
  source.addEventListener("job", function (e) {
    var j = JSON.parse(e.data);
    refresh("job:" + j.id);
    refresh("job");
  });
})();
