// A CSV problem's field in the officer's language, with the file's own column name beside it
// (the problem's reason is the library's sentence, in English).
import { t } from "./common.js";

export function fieldName(field) {
  const key = "fld_" + field;
  const name = t(key);
  return name === key ? field : name;
}
