// Sorts a table by the clicked column: numbers as numbers, text as text; a second click
// reverses. Rows in <tfoot> (the aggregate) stay where they are.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead ? table.tHead.rows[0].cells : [];
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      var key = function (row) {
        var text = row.cells[col] ? row.cells[col].textContent.trim() : "";
        var n = parseFloat(text.replace(/,/g, ""));
        return isNaN(n) || !/^-?[\d.,]+%?$/.test(text) ? text.toLowerCase() : n;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        var c = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? c : -c;
      });
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
  });
});
