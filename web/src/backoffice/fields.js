// A CSV problem in the officer's language: its field with the file's own column name beside it,
// and its reason from the problem's code (citypass/issuance.py Problem.code, with its values in
// Problem.args). The library's own sentence (English, as the command line prints it) stays
// beside the Dutch one for whoever supports the officer; a problem without a code shows it alone.
import { t, el, getLang, euro, day } from "./common.js";

export function fieldName(field) {
  const key = "fld_" + field;
  const name = t(key);
  return name === key ? field : name;
}

export function problemReason(p, tag = "td") {
  const key = "pr_" + (p.code || "");
  const known = p.code && t(key) !== key;
  if (!known || getLang() === "en") return el(tag, { lang: getLang() === "en" ? null : "en", text: p.reason });
  const args = Object.fromEntries(Object.entries(p.args || {}).map(([k, v]) => [k, k.endsWith("_cents") ? euro(v) : k.endsWith("_date") ? day(v) : v]));
  return el(tag, {}, t(key, args));
}
