// The help page's one script: say plainly when the server runs a development chain.
fetch("/api/deployment", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })
  .then((r) => (r.ok ? r.json() : null))
  .then((d) => {
    if (d && d.dev_chain) document.getElementById("dev-banner").hidden = false;
  })
  .catch(() => {});
