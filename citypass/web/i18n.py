"""What the till says, in Dutch (first) and English: one sentence per `Reason` code, and the
next step for the clerk.

Placeholders in braces are filled in by the page from the pre-check's `params`:
{left} the credit left, {short} how much is missing, {max} the voucher's limit, {limit} the
provider's limit per payment, {until} a date. Money comes as euro text (`€3,50` / `€3.50`).
"""

from __future__ import annotations

from typing import Any

from citypass.reasons import Reason

LANGUAGES = ("nl", "en")

# Every Reason name (contract v1 and v2): (title, text, next step) per language.
REASONS: dict[str, dict[str, tuple[str, str, str]]] = {
    "Ok": {
        "nl": ("Geldig", "De pas is geldig: nog {left} tegoed.", "Vul het bedrag in en druk op Betalen."),
        "en": ("Valid", "The pass is valid: {left} credit left.", "Type the amount and press Pay."),
    },
    "Paused": {
        "nl": ("Tijdelijk gestopt", "De gemeente heeft CityPass tijdelijk stilgezet; er kan nu niet betaald worden.",
               "Laat de klant op een andere manier betalen of later terugkomen."),
        "en": ("Paused", "The municipality has paused CityPass; no payments are possible right now.",
               "Ask the customer to pay another way or to come back later."),
    },
    "BudgetNotStarted": {
        "nl": ("Nog niet geldig", "Dit budget gaat pas later in.", "Vraag de klant om later terug te komen."),
        "en": ("Not valid yet", "This budget has not started yet.", "Ask the customer to come back later."),
    },
    "BudgetEnded": {
        "nl": ("Budget verlopen", "Dit budget is afgelopen; het tegoed kan niet meer worden besteed.",
               "Laat de klant op een andere manier betalen."),
        "en": ("Budget ended", "This budget has ended; its credit can no longer be spent.",
               "Ask the customer to pay another way."),
    },
    "BudgetNotEnded": {
        "nl": ("Budget loopt nog", "Dit budget loopt nog.", "Geen actie nodig aan de kassa."),
        "en": ("Budget still open", "This budget has not ended yet.", "Nothing to do at the till."),
    },
    "NoPass": {
        "nl": ("Geen stadspas", "Dit adres heeft geen stadspas.",
               "Vraag de klant de QR-code van de eigen stadspas te tonen."),
        "en": ("No city pass", "This address has no city pass.", "Ask the customer to show their own city pass QR code."),
    },
    "PassSuspended": {
        "nl": ("Pas geblokkeerd", "De stadspas is tijdelijk geblokkeerd.",
               "Verwijs de klant naar de gemeente (balie Stadspas)."),
        "en": ("Pass suspended", "The city pass is suspended.", "Refer the customer to the municipality's city pass desk."),
    },
    "PassRevoked": {
        "nl": ("Pas ingetrokken", "De stadspas is ingetrokken.", "Verwijs de klant naar de gemeente."),
        "en": ("Pass revoked", "The city pass has been revoked.", "Refer the customer to the municipality."),
    },
    "PassMigrated": {
        "nl": ("Pas verhuisd", "Deze pas is overgezet naar een nieuwe telefoon.",
               "Vraag de klant de QR-code op de nieuwe telefoon te tonen."),
        "en": ("Pass moved", "This pass moved to a new phone.", "Ask the customer to show the QR code on the new phone."),
    },
    "PassExpired": {
        "nl": ("Pas verlopen", "De stadspas is verlopen.", "De klant moet de pas laten verlengen bij de gemeente."),
        "en": ("Pass expired", "The city pass has expired.", "The customer must renew the pass at the municipality."),
    },
    "NotAProvider": {
        "nl": ("Geen aanbieder", "Deze wallet is geen aangemelde CityPass-aanbieder.",
               "Verbind de wallet van uw organisatie, of meld dit adres aan bij de gemeente."),
        "en": ("Not a provider", "This wallet is not a registered CityPass provider.",
               "Connect your organisation's wallet, or register this address with the municipality."),
    },
    "ProviderSuspended": {
        "nl": ("Aanbieder geschorst", "Deze aanbieder is geschorst en kan nu geen stadspastegoed aannemen.",
               "Neem contact op met de gemeente; laat de klant op een andere manier betalen."),
        "en": ("Provider suspended", "This provider is suspended and cannot accept city pass credit.",
               "Contact the municipality; ask the customer to pay another way."),
    },
    "ProviderRemoved": {
        "nl": ("Aanbieder afgemeld", "Deze aanbieder is niet meer aangemeld.", "Neem contact op met de gemeente."),
        "en": ("Provider removed", "This provider is no longer registered.", "Contact the municipality."),
    },
    "CategoryNotApproved": {
        "nl": ("Niet voor deze aanbieder", "Dit budget geldt niet voor uw soort aanbod (verkeerde categorie).",
               "Dit tegoed kan hier niet gebruikt worden; laat de klant op een andere manier betalen."),
        "en": ("Not for this provider", "This budget is not for your kind of service (wrong category).",
               "This credit cannot be used here; ask the customer to pay another way."),
    },
    "AboveProviderLimit": {
        "nl": ("Boven uw limiet", "Het bedrag is hoger dan uw limiet van {limit} per betaling.",
               "Reken maximaal {limit} af met de stadspas; de klant betaalt de rest zelf."),
        "en": ("Above your limit", "The amount is above your limit of {limit} per payment.",
               "Charge at most {limit} to the city pass; the customer pays the rest."),
    },
    "InsufficientCredit": {
        "nl": ("Onvoldoende tegoed", "Onvoldoende tegoed: nog {left} over.", "Vraag de klant {short} bij te betalen."),
        "en": ("Not enough credit", "Not enough credit: {left} left.", "Ask the customer to pay {short} on top."),
    },
    "ZeroAmount": {
        "nl": ("Geen bedrag", "Het bedrag is nul.", "Vul het bedrag in."),
        "en": ("No amount", "The amount is zero.", "Type the amount."),
    },
    "VoucherExpired": {
        "nl": ("QR-code verlopen", "Deze QR-code is verlopen.", "Vraag de klant de QR-code te verversen en scan opnieuw."),
        "en": ("QR code expired", "This QR code has expired.", "Ask the customer to refresh the QR code and scan again."),
    },
    "NonceUsed": {
        "nl": ("Al gebruikt", "Deze QR-code is al gebruikt voor een betaling.",
               "Niet opnieuw afrekenen. Vraag de klant om een nieuwe QR-code als er nog iets betaald moet worden."),
        "en": ("Already used", "This QR code was already used for a payment.",
               "Do not charge again. Ask for a new QR code if something is still to be paid."),
    },
    "BadSignature": {
        "nl": ("Ongeldige QR-code", "De handtekening van deze QR-code klopt niet.",
               "Vraag de klant de QR-code te verversen en scan opnieuw."),
        "en": ("Invalid QR code", "The signature of this QR code is not valid.",
               "Ask the customer to refresh the QR code and scan again."),
    },
    "TransferNotAllowed": {
        "nl": ("Niet toegestaan", "Stadspastegoed kan niet op deze manier worden overgemaakt.",
               "Gebruik de kassa om te betalen."),
        "en": ("Not allowed", "City pass credit cannot be moved this way.", "Use the till to take payments."),
    },
    "AboveVoucherLimit": {
        "nl": ("Boven de limiet van de QR-code", "Het bedrag is hoger dan de {max} die de klant voor deze betaling toestaat.",
               "Reken maximaal {max} af, of vraag de klant een QR-code met een hogere limiet te maken."),
        "en": ("Above the QR code's limit", "The amount is above the {max} the customer allows for this payment.",
               "Charge at most {max}, or ask the customer for a QR code with a higher limit."),
    },
    "WrongProvider": {
        "nl": ("Andere aanbieder", "Deze QR-code is gemaakt voor een andere aanbieder.",
               "Vraag de klant een QR-code voor uw organisatie (of voor elke aanbieder) te tonen."),
        "en": ("Other provider", "This QR code was made out to another provider.",
               "Ask the customer for a QR code for your organisation (or for any provider)."),
    },
}

# Till words that depend on the server's answers (the page keeps its own labels too).
UI: dict[str, dict[str, str]] = {
    "nl": {"dev_chain": "Ontwikkelketen: dit is geen echte CityPass. De sleutels zijn openbaar.",
           "offline_risk": "Offline gescand: het risico is voor de aanbieder tot de betaling op de keten staat.",
           "paid": "Betaald", "wrong_chain": "Uw wallet staat op een ander netwerk.",
           "rejected": "U heeft de transactie in uw wallet geweigerd.",
           "unknown": "Onbekende reden ({code}). Neem contact op met de gemeente."},
    "en": {"dev_chain": "Development chain: this is not a real CityPass. Its keys are public.",
           "offline_risk": "Scanned offline: the provider carries the risk until the payment is on chain.",
           "paid": "Paid", "wrong_chain": "Your wallet is on another network.",
           "rejected": "You rejected the transaction in your wallet.",
           "unknown": "Unknown reason ({code}). Contact the municipality."},
}


def catalogue(lang: str) -> dict[str, Any]:
    """The messages of `lang` ("nl" or "en") as the page gets them from /api/messages."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang: {lang!r} is not available; use one of {', '.join(LANGUAGES)}")
    return {
        "lang": lang,
        "reasons": {name: dict(zip(("title", "text", "next"), texts[lang])) for name, texts in REASONS.items()},
        "codes": {r.name: int(r) for r in Reason} | {"AboveVoucherLimit": 21, "WrongProvider": 22},
        "ui": UI[lang],
    }


def euro_text(cents: int, lang: str = "nl") -> str:
    """€3,50 (nl) or €3.50 (en); thousands with . (nl) or , (en)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(int(cents)), 100)
    grouped = f"{whole:,}"
    if lang == "nl":
        return f"{sign}€{grouped.replace(',', '.')},{part:02d}"
    return f"{sign}€{grouped}.{part:02d}"


def sentence(reason: str, lang: str, **params: Any) -> str:
    """The text and next step of `reason` with its placeholders filled (for tests and logs)."""
    title, text, step = REASONS[reason][lang]
    return f"{text.format(**params)} {step.format(**params)}".strip()
