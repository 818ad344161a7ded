// Behaviour for every page. Loaded as a file so the Content-Security-Policy can forbid inline scripts.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // One listener sends the CSRF token on every htmx request, DELETE included
  // (htmx 2 puts DELETE parameters in the query string, so a hidden field would not protect it).
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
    // `hx-get=""` on a link or `hx-post=""` on a button: the URL is its href or formaction, written
    // once in the page (the dashboard's cards would otherwise carry every URL twice).
    var elt = event.detail.elt;
    if (!elt.getAttribute("hx-" + event.detail.verb)) {
      event.detail.path = elt.getAttribute("formaction") || elt.getAttribute("href") || event.detail.path;
    }
  });

  // --- toasts -----------------------------------------------------------------------------------

  // While the modal is open it sits in the browser's top layer, above anything on the page: its
  // own toast region is then the one the user can see.
  function toastRegion() {
    var dialog = document.querySelector("#modal-root dialog[open]");
    return (dialog && dialog.querySelector(".modal-toasts")) || document.getElementById("toasts");
  }

  function showToast(message, category) {
    var box = toastRegion();
    if (!box || !message) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (category || "success");
    toast.setAttribute("role", category === "error" ? "alert" : "status");
    toast.textContent = message;
    box.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 6000);
  }

  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message, detail.category);
  });

  function retryAfter(xhr) {
    var seconds = parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
    if (!(seconds > 0)) return "Too many attempts. Wait a minute and try again.";
    if (seconds < 90) return "Too many attempts. Try again in " + seconds + " second" + (seconds === 1 ? "" : "s") + ".";
    var minutes = Math.ceil(seconds / 60);
    if (minutes < 90) return "Too many attempts. Try again in " + minutes + " minutes.";
    var at = new Date(Date.now() + seconds * 1000);
    return "Too many attempts. Try again after " + at.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" }) + ".";
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var status = xhr ? xhr.status : 0;
    var messages = {
      400: "Your page expired. Reload it and try again.",
      404: "That item no longer exists. Reload the page."
    };
    var message = status === 429 ? retryAfter(xhr) : messages[status];
    showToast(message || "Something went wrong. Please try again.", "error");
  });

  document.addEventListener("htmx:sendError", function () {
    showToast("The server could not be reached. Check your connection.", "error");
  });

  // --- the modal: a <dialog> opened with showModal() (focus moves in, Esc closes) ---------------

  var opener = null;

  function modal() {
    return document.querySelector("#modal-root dialog");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.target;
    if (target && target.id === "modal-root" && !(modal() && modal().open)) {
      opener = document.activeElement;  // focus returns here when the modal closes
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "modal-root") {
      var dialog = modal();
      if (dialog && !dialog.open) {
        dialog.addEventListener("close", onModalClosed);
        dialog.showModal();
      }
      if (dialog) focusFirst(dialog);
    }
    if (target && target.id === "test-result" && target.querySelector(".test-result-ok")) {
      clearFieldErrors(target.closest("form"));
    }
    showLocalTimes(target);
    applyShownWhen(target);
  });

  // A green test proves the values: the errors of an earlier attempt no longer apply.
  function clearFieldErrors(form) {
    if (!form) return;
    form.querySelectorAll(".field-error, .form-error").forEach(function (error) { error.remove(); });
    form.querySelectorAll("[aria-invalid]").forEach(function (input) { input.removeAttribute("aria-invalid"); });
  }

  // <time data-local-time datetime="...Z">: the server writes UTC, the reader sees their own clock.
  function showLocalTimes(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(function (time) {
      var moment = new Date(time.getAttribute("datetime"));
      if (isNaN(moment)) return;
      time.textContent = moment.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      time.title = time.getAttribute("datetime");
    });
  }

  function focusFirst(dialog) {
    var invalid = dialog.querySelector("[aria-invalid=true]");
    var first = invalid || dialog.querySelector("input:not([type=hidden]), select, textarea, .choice-card[href]");
    if (first) first.focus();
  }

  function onModalClosed() {
    var root = document.getElementById("modal-root");
    if (root) root.innerHTML = "";
    if (opener && document.body.contains(opener)) opener.focus();
    opener = null;
  }

  function closeModal() {
    var dialog = modal();
    if (dialog && dialog.open) dialog.close();
  }

  document.addEventListener("modal:close", closeModal);

  // A card's More menu closes when the user clicks anywhere else (or picks an item).
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.card-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target) || event.target.closest("li")) menu.removeAttribute("open");
    });
  });

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-modal]");
    if (closer && modal() && modal().open) {
      event.preventDefault();
      closeModal();
    }
  });

  // --- fields that apply only to some choices (e.g. Token URL for OAuth 2.0) ---------------------

  function formsIn(root) {
    root = root || document;
    var forms = Array.prototype.slice.call(root.querySelectorAll ? root.querySelectorAll("form") : []);
    if (root.matches && root.matches("form")) forms.push(root);  // a change event hands us the form itself
    return forms;
  }

  function applyShownWhen(root) {
    formsIn(root).forEach(function (form) {
      form.querySelectorAll("[data-shown-when]").forEach(function (input) {
        var rule = input.getAttribute("data-shown-when").split("=");
        var other = form.querySelector('[name="' + rule[0] + '"]');
        var wrapper = input.closest(".field") || (input.matches(".modal-footer") ? input : null);
        if (!other || !wrapper) return;
        // A choice that is itself hidden counts as none (e.g. Grant while API Key is chosen).
        var shown = rule[1].split("|").indexOf(other.disabled ? "" : other.value) !== -1;
        wrapper.hidden = !shown;
        input.disabled = !shown;  // a hidden choice's value is not sent at all
      });
      // "Only for OAuth 2.0" headings are for pages without JavaScript, which show every field.
      form.querySelectorAll(".only-for").forEach(function (note) { note.hidden = true; });
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("select") && event.target.form) applyShownWhen(event.target.form);
  });

  // --- typed secrets survive a re-rendered form (the server never sends them back to htmx) -------

  var typedSecrets = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    typedSecrets = null;
    var form = event.detail.target && event.detail.target.querySelector
      ? event.detail.target.querySelector("form.integration-form") : null;
    if (!form) return;
    var values = {};
    form.querySelectorAll("input[type=password]").forEach(function (input) {
      if (input.value) values[input.name] = input.value;
    });
    typedSecrets = { action: form.getAttribute("action"), values: values };
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var saved = typedSecrets;
    typedSecrets = null;
    var form = saved && event.detail.target && event.detail.target.querySelector
      ? event.detail.target.querySelector("form.integration-form") : null;
    if (!form || form.getAttribute("action") !== saved.action) return;  // another form: nothing to keep
    form.querySelectorAll("input[type=password]").forEach(function (input) {
      if (!input.value && saved.values[input.name]) input.value = saved.values[input.name];
    });
  });

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    applyShownWhen(document);
    document.querySelectorAll("#toasts .toast").forEach(function (toast) {
      setTimeout(function () { toast.remove(); }, 6000);
    });
  });

  // Copy buttons (the Webhooks page's inbound URL): data-copy-target names the input to copy.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    if (!input) return;
    input.select();
    var copied = navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject();
    copied.then(function () { showToast("Copied.", "success"); }, function () { showToast("Select the text and copy it.", "info"); });
  });

  window.localboxs = { showToast: showToast };
})();
