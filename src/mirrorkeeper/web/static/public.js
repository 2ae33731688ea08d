// Live progress on the public page (inlined, allowed by its hash): the page is complete
// without it. While a mirror syncs its percentage follows; when a sync starts or ends the
// page is fetched again, so the server's words stay the only ones.
(function () {
  "use strict";
  var table = document.getElementById("mirrors");
  if (!table || !window.EventSource) return;
  var source = new EventSource("/api/events");
  source.onmessage = function (event) {
    var mirrors = JSON.parse(event.data).mirrors;
    var rows = table.querySelectorAll("tr[data-mirror]");
    for (var i = 0; i < rows.length; i++) {
      var live = mirrors[rows[i].getAttribute("data-mirror")];
      if (!live) continue;
      var running = live.state === "running";
      if (running !== (rows[i].getAttribute("data-running") === "1")) {
        source.close();
        window.location.reload();
        return;
      }
      var words = rows[i].querySelector(".state-words");
      if (running && words && live.percent !== null) {
        words.textContent = "Syncing " + Math.round(live.percent) + "%";
      }
    }
  };
})();
