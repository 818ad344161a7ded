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
  });

  // --- toasts -----------------------------------------------------------------------------------

  function showToast(message, category) {
    var box = document.getElementById("toasts");
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

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    var messages = {
      400: "Your page expired. Reload it and try again.",
      404: "That item no longer exists. Reload the page.",
      429: "Too many attempts. Wait a minute and try again."
    };
    showToast(messages[status] || "Something went wrong. Please try again.", "error");
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
    applyShownWhen(target);
  });

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

  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-modal]");
    if (closer && modal() && modal().open) {
      event.preventDefault();
      closeModal();
    }
  });

  // --- fields that apply only to some choices (e.g. Token URL for OAuth 2.0) ---------------------

  function applyShownWhen(root) {
    (root || document).querySelectorAll("form").forEach(function (form) {
      form.querySelectorAll("[data-shown-when]").forEach(function (input) {
        var rule = input.getAttribute("data-shown-when").split("=");
        var other = form.querySelector('[name="' + rule[0] + '"]');
        var wrapper = input.closest(".field");
        if (!other || !wrapper) return;
        var shown = rule[1].split("|").indexOf(other.value) !== -1;
        wrapper.hidden = !shown;
      });
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches("select")) applyShownWhen(event.target.form);
  });

  document.addEventListener("DOMContentLoaded", function () {
    applyShownWhen(document);
    document.querySelectorAll("#toasts .toast").forEach(function (toast) {
      setTimeout(function () { toast.remove(); }, 6000);
    });
  });

  window.localboxs = { showToast: showToast };
})();
