// The contacts list: "Select all on this page" ticks every row's checkbox. Delegated, so it keeps
// working after htmx swaps the list (search, paging). Without JavaScript rows are ticked one by one.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var master = event.target;
    if (!master.matches || !master.matches("input[data-select-all]")) return;
    var form = master.form;
    if (!form) return;
    form.querySelectorAll('input[type="checkbox"][name="' + master.dataset.selectAll + '"]').forEach(function (box) {
      box.checked = master.checked;
    });
  });
})();
