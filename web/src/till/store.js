// The till's memory in IndexedDB: the payment in flight (so a reload never forgets a sent
// transaction), the offline queue, settings, and the last answers of the server for offline use.
// BigInts are stored as {$big: "123"} so every record survives structured cloning and JSON alike.

const DB = "citypass-till";
const STORE = "kv";
let opened = null;

function open() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opened;
}

const pack = (value) => JSON.parse(JSON.stringify(value, (k, v) => (typeof v === "bigint" ? { $big: v.toString() } : v)));
const unpack = (value) =>
  value === undefined ? undefined : JSON.parse(JSON.stringify(value), (k, v) => (v && typeof v === "object" && "$big" in v ? BigInt(v.$big) : v));

async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req && req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export const get = async (key) => unpack(await run("readonly", (s) => s.get(key)));
export const put = (key, value) => run("readwrite", (s) => s.put(pack(value), key));
export const del = (key) => run("readwrite", (s) => s.delete(key));
