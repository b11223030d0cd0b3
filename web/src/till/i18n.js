// The till's own words, Dutch first, English one click away. The sentences for refusal
// reasons come from the server's message catalogue (POST /api/messages), kept for offline use.

export const UI = {
  nl: {
    title: "Kassa",
    appName: "CityPass",
    switchLang: "English",
    switchLangLabel: "Switch to English",
    help: "Hulp bij de eerste dag",
    devChain: "Dit is een ontwikkel-chain met openbare testsleutels. Gebruik hem niet voor echt geld.",
    loading: "De kassa wordt geladen…",
    // wallet
    walletHeading: "1. Wallet van de aanbieder",
    walletNone: "Geen wallet gevonden. Installeer een browser-wallet (bijvoorbeeld MetaMask of Rabby) met het adres dat de gemeente voor u heeft geregistreerd, of open deze pagina in de browser van uw wallet-app. Scannen en controleren werken ook zonder wallet; betalen niet.",
    walletFound: "Gevonden wallet: {name}.",
    walletConnect: "Wallet koppelen",
    walletConnectWith: "Koppel {name}",
    walletConnecting: "Bevestig het koppelen in uw wallet…",
    walletRejected: "U heeft het koppelen geweigerd in de wallet. Klik opnieuw op ‘Wallet koppelen’ als u wilt betalen.",
    walletGone: "De wallet is niet meer bereikbaar. Herlaad de pagina of open de wallet opnieuw.",
    walletError: "De wallet gaf een fout: {message}",
    wrongChain: "Uw wallet staat op een ander netwerk (chain {have}). De kassa werkt op {want}.",
    switchChain: "Wissel naar {want}",
    switchRejected: "U heeft het wisselen van netwerk geweigerd. Betalen kan pas op {want}.",
    providerName: "Aanbieder",
    providerAddress: "Adres",
    providerCategories: "Categorieën",
    providerLimit: "Maximaal per betaling",
    noLimit: "geen limiet",
    gasLeft: "Gas over",
    gasLow: "Weinig gas over: vraag de gemeente om bij te vullen.",
    unnamed: "(naam nog niet geregistreerd)",
    // scan
    scanHeading: "2. Pas scannen",
    cameraStart: "Camera aan",
    cameraStop: "Camera uit",
    cameraLabel: "Camerabeeld",
    cameraNone: "Geen camera beschikbaar. Kies een foto van de QR-code of typ de code.",
    cameraDenied: "De camera mag niet worden gebruikt. Geef toestemming in de browser, of kies een foto.",
    cameraLooking: "Houd de QR-code van de pas voor de camera.",
    photo: "Kies een foto van de QR-code",
    photoNoQr: "Op deze foto staat geen leesbare QR-code. Probeer een scherpere foto.",
    typed: "Of plak of scan de code als tekst",
    typedHint: "Begint met CP2: (handscanners typen de code hier).",
    typedSubmit: "Controleren",
    notCityPass: "Dit is geen CityPass-code. Vraag de klant de pas-QR in de CityPass-app te tonen.",
    checking: "Pas wordt gecontroleerd…",
    qrRefused: "De kassa kan deze pas niet gebruiken. Vraag de klant de pas-QR opnieuw te laten zien. (Server: {message})",
    // verdict
    verdictHeading: "3. Tegoed en betalen",
    noScanYet: "Scan eerst een pas.",
    entitledNone: "Deze pas geeft hier geen recht op tegoed.",
    left: "Nog {left} over",
    until: "geldig tot {until}",
    voucherMax: "maximaal {max} per betaling met deze code",
    spendable: "Nu te besteden: {amount}",
    chooseBudget: "Budget",
    amount: "Bedrag (€)",
    amountHint: "Het bedrag dat van het tegoed af gaat, bijvoorbeeld 12,50.",
    coPayment: "Eigen bijdrage contant (€, niet verplicht)",
    coPaymentHint: "Wat de klant zelf betaalt. Alleen voor de administratie.",
    refundable: "Terugbetaalbaar (bijvoorbeeld een cursus die kan uitvallen)",
    pay: "Afrekenen",
    queue: "In de offline wachtrij zetten",
    amountInvalid: "Typ een bedrag in euro’s, bijvoorbeeld 12,50.",
    amountTooManyDecimals: "Gebruik hoogstens twee cijfers achter de komma.",
    precheckOk: "In orde: {amount} kan van {budget} af.",
    precheckBusy: "Controleren…",
    needWallet: "Koppel eerst de wallet van de aanbieder om te betalen.",
    needApproval: "Dit adres is geen goedgekeurde aanbieder; betalen kan niet.",
    confirmInWallet: "Bevestig de betaling van {amount} in uw wallet…",
    waitingChain: "Verstuurd. Wachten tot de betaling op de chain staat… Reken niet opnieuw af.",
    paid: "Betaald",
    paidText: "{amount} van {budget}. Nog {left} over.",
    paidCo: "Eigen bijdrage contant: {amount}.",
    rejected: "U heeft de betaling geweigerd in de wallet. Er is niets afgeschreven. Klik opnieuw op ‘Afrekenen’ als de klant toch wil betalen.",
    reverted: "Niet betaald: de chain weigerde de betaling. Er is niets afgeschreven.",
    resolving: "Even nakijken of de vorige betaling gelukt is. Reken nog niet opnieuw af.",
    resolvedPaid: "De vorige betaling is gelukt: {amount} van {budget}.",
    resolvedNotPaid: "De vorige betaling is niet doorgegaan; er is niets afgeschreven. U kunt opnieuw afrekenen.",
    resolvedLater: "De verbinding is weg. De vorige betaling wordt nagekeken zodra de verbinding terug is. Reken niet opnieuw af.",
    scanAgain: "Volgende klant",
    // offline
    offlineHeading: "Offline wachtrij",
    offline: "Geen verbinding met de chain. Scans gaan in de wachtrij en worden verstuurd zodra de verbinding terug is.",
    offlineRisk: "Offline scans zijn op risico van de aanbieder: de chain controleert ze pas later.",
    offlineLimit: "Maximaal per offline scan (€)",
    offlineLimitSave: "Opslaan",
    offlineLimitSaved: "Opgeslagen: maximaal {amount} per offline scan.",
    offlineAbove: "Boven de offline limiet van {amount}. Vraag de klant het verschil te betalen.",
    offlineUnknownLeft: "Saldo onbekend (offline)",
    queued: "In de wachtrij: {amount} van {budget}.",
    queueEmpty: "De wachtrij is leeg.",
    queueDuplicate: "Deze pas staat al in de wachtrij voor dit budget.",
    queueSubmit: "Wachtrij nu versturen",
    queueSubmitting: "Wachtrij wordt verstuurd ({count} scans)… Bevestig in uw wallet.",
    queueResult: "Wachtrij verstuurd: {ok} betaald, {skipped} overgeslagen.",
    queueSkipped: "Overgeslagen",
    queuePaid: "Betaald",
    online: "De verbinding is terug.",
    // takings
    takingsHeading: "Vandaag",
    takingsEmpty: "Vandaag nog geen betalingen.",
    takingsTotal: "Ontvangen {redeemed}, terugbetaald {refunded}, netto {net} ({count} betalingen).",
    takingsRefresh: "Vernieuwen",
    takingsOffline: "Offline: de betalingen van vandaag verschijnen weer als de verbinding terug is.",
    colTime: "Tijd",
    colBudget: "Budget",
    colAmount: "Bedrag",
    colKind: "Soort",
    colAction: "Actie",
    kindRedemption: "betaling",
    kindRefund: "terugbetaling",
    refund: "Terugbetalen",
    refundAmount: "Terug te betalen (€)",
    refundConfirm: "Terugbetaling versturen",
    refundCancel: "Annuleren",
    refundDone: "Terugbetaald: {amount} naar de pas van de klant.",
    refundLeft: "nog {amount} terug te betalen",
    needWalletTakings: "Koppel de wallet om de betalingen van vandaag te zien.",
    // errors
    serverError: "De server gaf een fout: {message}",
    cannotReach: "De server is niet bereikbaar.",
  },
  en: {
    title: "Till",
    appName: "CityPass",
    switchLang: "Nederlands",
    switchLangLabel: "Schakel naar Nederlands",
    help: "Help for your first day (Dutch)",
    devChain: "This is a development chain with public test keys. Do not use it for real money.",
    loading: "Loading the till…",
    walletHeading: "1. The provider's wallet",
    walletNone: "No wallet found. Install a browser wallet (for example MetaMask or Rabby) holding the address the municipality registered for you, or open this page in your wallet app's browser. Scanning and checking work without a wallet; paying does not.",
    walletFound: "Wallet found: {name}.",
    walletConnect: "Connect wallet",
    walletConnectWith: "Connect {name}",
    walletConnecting: "Confirm the connection in your wallet…",
    walletRejected: "You declined the connection in the wallet. Click ‘Connect wallet’ again to take payments.",
    walletGone: "The wallet can no longer be reached. Reload the page or reopen the wallet.",
    walletError: "The wallet reported an error: {message}",
    wrongChain: "Your wallet is on another network (chain {have}). The till works on {want}.",
    switchChain: "Switch to {want}",
    switchRejected: "You declined the network switch. Payments need {want}.",
    providerName: "Provider",
    providerAddress: "Address",
    providerCategories: "Categories",
    providerLimit: "At most per payment",
    noLimit: "no limit",
    gasLeft: "Gas left",
    gasLow: "Little gas left: ask the municipality for a top-up.",
    unnamed: "(name not registered yet)",
    scanHeading: "2. Scan the pass",
    cameraStart: "Camera on",
    cameraStop: "Camera off",
    cameraLabel: "Camera picture",
    cameraNone: "No camera available. Choose a photo of the QR code or type the code.",
    cameraDenied: "The camera may not be used. Allow it in the browser, or choose a photo.",
    cameraLooking: "Hold the pass's QR code in front of the camera.",
    photo: "Choose a photo of the QR code",
    photoNoQr: "This photo has no readable QR code. Try a sharper photo.",
    typed: "Or paste or scan the code as text",
    typedHint: "Starts with CP2: (hand scanners type the code here).",
    typedSubmit: "Check",
    notCityPass: "This is not a CityPass code. Ask the customer to show the pass QR in the CityPass app.",
    checking: "Checking the pass…",
    qrRefused: "The till cannot use this pass. Ask the customer to show the pass QR again. (Server: {message})",
    verdictHeading: "3. Credit and payment",
    noScanYet: "Scan a pass first.",
    entitledNone: "This pass gives no credit here.",
    left: "{left} left",
    until: "valid until {until}",
    voucherMax: "at most {max} per payment with this code",
    spendable: "Can be spent now: {amount}",
    chooseBudget: "Budget",
    amount: "Amount (€)",
    amountHint: "The amount taken from the credit, for example 12.50.",
    coPayment: "Co-payment in cash (€, optional)",
    coPaymentHint: "What the customer pays themselves. For the records only.",
    refundable: "Refundable (for example a course that may be cancelled)",
    pay: "Take payment",
    queue: "Put in the offline queue",
    amountInvalid: "Type an amount in euros, for example 12.50.",
    amountTooManyDecimals: "Use at most two digits after the decimal point.",
    precheckOk: "All right: {amount} can come off {budget}.",
    precheckBusy: "Checking…",
    needWallet: "Connect the provider's wallet first to take payments.",
    needApproval: "This address is not an approved provider; payments are not possible.",
    confirmInWallet: "Confirm the payment of {amount} in your wallet…",
    waitingChain: "Sent. Waiting until the payment is on the chain… Do not charge again.",
    paid: "Paid",
    paidText: "{amount} from {budget}. {left} left.",
    paidCo: "Co-payment in cash: {amount}.",
    rejected: "You declined the payment in the wallet. Nothing was taken. Click ‘Take payment’ again if the customer still wants to pay.",
    reverted: "Not paid: the chain refused the payment. Nothing was taken.",
    resolving: "Checking whether the previous payment went through. Do not charge again yet.",
    resolvedPaid: "The previous payment went through: {amount} from {budget}.",
    resolvedNotPaid: "The previous payment did not go through; nothing was taken. You may take the payment again.",
    resolvedLater: "The connection is down. The previous payment is checked as soon as it is back. Do not charge again.",
    scanAgain: "Next customer",
    offlineHeading: "Offline queue",
    offline: "No connection to the chain. Scans go into the queue and are sent as soon as the connection is back.",
    offlineRisk: "Offline scans are at the provider's risk: the chain checks them only later.",
    offlineLimit: "At most per offline scan (€)",
    offlineLimitSave: "Save",
    offlineLimitSaved: "Saved: at most {amount} per offline scan.",
    offlineAbove: "Above the offline limit of {amount}. Ask the customer to pay the difference.",
    offlineUnknownLeft: "Credit unknown (offline)",
    queued: "Queued: {amount} from {budget}.",
    queueEmpty: "The queue is empty.",
    queueDuplicate: "This pass is already queued for this budget.",
    queueSubmit: "Send the queue now",
    queueSubmitting: "Sending the queue ({count} scans)… Confirm in your wallet.",
    queueResult: "Queue sent: {ok} paid, {skipped} skipped.",
    queueSkipped: "Skipped",
    queuePaid: "Paid",
    online: "The connection is back.",
    takingsHeading: "Today",
    takingsEmpty: "No payments yet today.",
    takingsTotal: "Received {redeemed}, refunded {refunded}, net {net} ({count} payments).",
    takingsRefresh: "Refresh",
    takingsOffline: "Offline: today's payments show again when the connection is back.",
    colTime: "Time",
    colBudget: "Budget",
    colAmount: "Amount",
    colKind: "Kind",
    colAction: "Action",
    kindRedemption: "payment",
    kindRefund: "refund",
    refund: "Refund",
    refundAmount: "Amount to refund (€)",
    refundConfirm: "Send refund",
    refundCancel: "Cancel",
    refundDone: "Refunded: {amount} to the customer's pass.",
    refundLeft: "{amount} can still be refunded",
    needWalletTakings: "Connect the wallet to see today's payments.",
    serverError: "The server reported an error: {message}",
    cannotReach: "The server cannot be reached.",
  },
};

export function fill(template, values = {}) {
  return String(template).replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
}

export function formatCents(cents, lang) {
  const negative = cents < 0;
  const abs = Math.abs(Math.trunc(cents));
  const euros = Math.floor(abs / 100).toString();
  const rest = String(abs % 100).padStart(2, "0");
  const group = lang === "nl" ? "." : ",";
  const grouped = euros.replace(/\B(?=(\d{3})+(?!\d))/g, group);
  return (negative ? "−" : "") + "€" + grouped + (lang === "nl" ? "," : ".") + rest;
}

/** "12,50" / "12.50" / "€ 12" -> cents; throws Error("amountInvalid"|"amountTooManyDecimals"). */
export function parseEuros(text) {
  const clean = String(text).replace(/[€\s]/g, "");
  if (!clean) return null;
  const m = /^(\d{1,9})(?:[.,](\d*))?$/.exec(clean);
  if (!m) throw new Error("amountInvalid");
  const decimals = m[2] || "";
  if (decimals.length > 2) throw new Error("amountTooManyDecimals");
  return Number(m[1]) * 100 + Number(decimals.padEnd(2, "0"));
}

export function formatDate(unix, lang) {
  return new Date(unix * 1000).toLocaleDateString(lang === "nl" ? "nl-NL" : "en-GB", {
    day: "numeric", month: "long", year: "numeric", timeZone: "Europe/Amsterdam",
  });
}

export function formatTime(unix, lang) {
  return new Date(unix * 1000).toLocaleTimeString(lang === "nl" ? "nl-NL" : "en-GB", {
    hour: "2-digit", minute: "2-digit", timeZone: "Europe/Amsterdam",
  });
}

/** Unix seconds of the last midnight in Amsterdam (the Dutch day the takings cover). */
export function amsterdamMidnight(nowMs = Date.now()) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/Amsterdam", hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23",
  }).formatToParts(new Date(nowMs));
  const get = (t) => Number(parts.find((p) => p.type === t).value);
  const sinceMidnight = get("hour") * 3600 + get("minute") * 60 + get("second");
  return Math.floor(nowMs / 1000) - sinceMidnight;
}
