"""Consent and control keywords: STOP, START, HELP and ERASE in Spanish, English, Creole, French.

A keyword counts only when it is the whole message: surrounding whitespace, punctuation and emoji
are ignored ("Stop!", " baja. ", "STOP 🙏"), and so are case and accents ("ARRÊT" is "arret",
"KÒMANSE" is "komanse"); any second word makes it an ordinary message ("no quiero parar de
aprender" is not a stop).  This is how Twilio and the carriers match their own keywords, and it
keeps a sentence that merely contains "stop" from changing anyone's consent.

Twilio matches its own list first (when Advanced Opt-Out is on for the Messaging Service) and
reports what it did in the ``OptOutType`` webhook parameter; ``classify`` takes that too, because
Twilio has already blocked or unblocked the number whatever we decide.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from campaigns.languages import Language


class KeywordKind(enum.StrEnum):
    """What a keyword asks for.

    ``stop``: no more campaign messages (the assistant still answers when the contact writes).
    ``start``: campaign messages again.  ``help``: what this service is and which words it
    understands.  ``erase``: forget the contact's number and messages.
    """

    stop = "stop"
    start = "start"
    help = "help"
    erase = "erase"


@dataclass(frozen=True, slots=True)
class KeywordMatch:
    """A message recognised as a keyword.

    ``keyword`` is the word as matched, lower case and without accents ("" when only Twilio's
    ``OptOutType`` recognised a longer message).  ``language`` is the language the word most
    likely signals, or None when the word is used across languages (STOP, INFO); use it to answer
    a contact whose language is unknown.  ``reported_by_twilio`` tells that the webhook carried
    an ``OptOutType``: Twilio itself has blocked, unblocked or answered the number, so record the
    consent change as Twilio's.
    """

    kind: KeywordKind
    keyword: str
    language: Language | None
    reported_by_twilio: bool = False


# The lists, by kind and by the language a word signals (None: used across languages).  Written
# as people see them; matching ignores case and accents, so "ARRÊT" also covers "arret".
#
# What is left out, and why: a false STOP silences someone who wanted the information, a false
# START re-subscribes someone who said no (the worse error: it breaks their consent), and a false
# ERASE cannot be undone.  So:
# - Poll and menu answers are never keywords: YES, SÍ, WI, OUI, NO, NON, OK (Twilio counts YES as
#   START; if Twilio is left configured that way its OptOutType still reaches us and wins).
# - Menu navigation: INICIO, MENU, SALIR ("back to the start", "leave this menu") are bot
#   commands, not a consent change; INICIO in particular would re-subscribe an opted-out contact
#   who only wanted the main menu.
# - FIN / FINI end a conversation, not a subscription; PARA is also a preposition and arrives
#   alone when people type a sentence one word per message on WhatsApp.
# - SOS, AUXILIO, SOCORRO, AYÚDAME signal an emergency: they must reach the assistant, which can
#   give emergency contacts, not a canned description of the service.
# - INFORMACIÓN and similar are questions for the assistant; INFO stays because it is one of
#   Twilio's default HELP words (and HELP's reply points to MENU anyway).
KEYWORDS: Final[Mapping[KeywordKind, Mapping[Language | None, tuple[str, ...]]]] = {
    KeywordKind.stop: {
        # The word on every phone in the region, and the legal one in France.
        None: ("STOP",),
        # Twilio's defaults (STOP above): Twilio blocks the number on each of them, so we must
        # record the opt-out too.  UNSUB is the common short form.
        "en": ("STOPALL", "UNSUBSCRIBE", "UNSUB", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"),
        # BAJA is what Mexican SMS services advertise; BASTA ("enough") alone means stop.
        "es": (
            "BAJA",
            "ALTO",
            "PARAR",
            "BASTA",
            "CANCELAR",
            "DETENER",
            "DESUSCRIBIR",
            "DESUSCRIBIRME",
            "DESUSCRIBIRSE",
        ),
        # ARRÊT/ARRÊTE are Canada's French opt-out words (Twilio's Canadian list).
        "fr": (
            "ARRÊT",
            "ARRÊTE",
            "ARRÊTER",
            "ARRÊTEZ",
            "ANNULER",
            "DÉSABONNER",
            "DÉSABONNEMENT",
            "DÉSINSCRIRE",
            "DÉSINSCRIPTION",
        ),
        # Kanpe ("stop!"), sispann ("cease"), anile ("cancel"), dezabòne ("unsubscribe").
        "ht": ("KANPE", "SISPANN", "ANILE", "DEZABÒNE"),
    },
    KeywordKind.start: {
        # Twilio's defaults are START, UNSTOP and YES; YES is left out (see above).
        "en": ("START", "UNSTOP", "SUBSCRIBE"),
        "es": ("ALTA", "SUSCRIBIR", "SUSCRIBIRME", "SUSCRIBIRSE"),
        "fr": ("COMMENCER", "ABONNER"),
        # Creole spelling varies: kòmanse and konmanse are both written.
        "ht": ("KÒMANSE", "KONMANSE", "ABÒNE"),
    },
    KeywordKind.help: {
        None: ("INFO",),
        "en": ("HELP",),
        "es": ("AYUDA",),
        "fr": ("AIDE",),
        # Èd is the noun ("help"), ede the verb.
        "ht": ("ÈD", "EDE"),
    },
    KeywordKind.erase: {
        # Irreversible, so only unmistakable imperatives and infinitives.
        "en": ("DELETE", "ERASE"),
        "es": ("BORRAR", "BORRARME", "ELIMINAR"),
        "fr": ("EFFACER", "SUPPRIMER"),
        "ht": ("EFASE", "SIPRIME"),
    },
}

# Twilio's ``OptOutType`` webhook values.
_OPT_OUT_TYPES: Final[Mapping[str, KeywordKind]] = {
    "STOP": KeywordKind.stop,
    "START": KeywordKind.start,
    "HELP": KeywordKind.help,
}


def _fold(text: str) -> str:
    """Lower case, compatibility forms unfolded (full-width letters too), accents removed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _strip_decoration(text: str) -> str:
    """``text`` without leading or trailing characters that are not letters or digits."""
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


def normalize_word(text: str) -> str | None:
    """The message as one folded word, or None when it holds no word or more than one.

    Hyphens inside the word are dropped, so "opt-out" is "optout".
    """
    # Count words before folding too: folding turns some symbols into letters ("™" into "tm")
    # and a few rare letters into nothing, and neither may change how many words were sent.
    raw = _strip_decoration(text)
    word = _strip_decoration(_fold(raw))
    if not word or any(c.isspace() for c in raw + word):
        return None
    return "".join(c for c in word if unicodedata.category(c) != "Pd")


def _build_index() -> dict[str, tuple[KeywordKind, Language | None]]:
    index: dict[str, tuple[KeywordKind, Language | None]] = {}
    for kind, by_language in KEYWORDS.items():
        for language, words in by_language.items():
            for word in words:
                key = normalize_word(word)
                if key is None or key in index:
                    raise ValueError(f"keyword {word!r} is not one word or is listed twice")
                index[key] = (kind, language)
    return index


_INDEX: Final = _build_index()


def kind_from_opt_out_type(value: str | None) -> KeywordKind | None:
    """The kind Twilio's ``OptOutType`` webhook parameter reports (STOP, START, HELP), if any."""
    return _OPT_OUT_TYPES.get((value or "").strip().upper())


def classify(text: str, *, opt_out_type: str | None = None) -> KeywordMatch | None:
    """Recognise a consent or control keyword in an inbound message, or return None.

    ``opt_out_type`` is Twilio's ``OptOutType`` parameter from the same webhook.  When present it
    decides the kind, since Twilio has already acted on it, with one exception: an erase word
    that Twilio reports as STOP (a Messaging Service configured with BORRAR as an opt-out word)
    stays ``erase``, because erasing the contact also stops the messages.
    """
    word = normalize_word(text)
    match: KeywordMatch | None = None
    if word is not None and word in _INDEX:
        kind, language = _INDEX[word]
        match = KeywordMatch(kind=kind, keyword=word, language=language)
    twilio_kind = kind_from_opt_out_type(opt_out_type)
    if twilio_kind is None:
        return match
    erase_reported_as_stop = (
        match is not None and match.kind == KeywordKind.erase and twilio_kind == KeywordKind.stop
    )
    return KeywordMatch(
        kind=KeywordKind.erase if erase_reported_as_stop else twilio_kind,
        keyword=word or "",
        language=match.language if match is not None else None,
        reported_by_twilio=True,
    )


# Each reply fits one GSM-7 segment (160 characters, no character forcing UCS-2): that is checked
# by the tests.  Spanish avoids á, í, ó, ú by choice of words, never by misspelling ("teléfono"
# rather than "número"); Creole's è and ò are GSM-7, but capital Ò is not, which is why the
# Creole START word is written "Kòmanse".  France's opt-out word is STOP, so French uses it.
_CONFIRMATIONS: Final[Mapping[KeywordKind, Mapping[str, str]]] = {
    KeywordKind.stop: {
        "es": (
            "Listo, ya no te enviaremos mensajes de campañas. Puedes escribirnos cuando quieras "
            "si tienes preguntas. Para recibirlos otra vez, escribe ALTA."
        ),
        "en": (
            "Done: you will no longer receive campaign messages. You can still write to us with "
            "questions at any time. To receive them again, reply START."
        ),
        "ht": (
            "Ou p ap resevwa mesaj kanpay yo ankò. Ou ka toujou ekri nou si w gen kesyon. "
            'Si w vle resevwa yo ankò, voye "Kòmanse".'
        ),
        "fr": (
            "Vous ne recevrez plus nos messages de campagne. Vous pouvez toujours nous écrire "
            "pour poser vos questions. Pour les recevoir à nouveau, envoyez COMMENCER."
        ),
    },
    KeywordKind.start: {
        "es": (
            "¡Qué bueno tenerte de vuelta! Te enviaremos otra vez los mensajes de campañas. "
            "Si quieres dejar de recibirlos, escribe BAJA."
        ),
        "en": (
            "Welcome back! You will receive our campaign messages again. "
            "Reply STOP at any time to stop them."
        ),
        "ht": (
            "Byenvini ankò! W ap resevwa mesaj kanpay nou yo ankò. Si w vle yo sispann, voye KANPE."
        ),
        "fr": (
            "Bon retour parmi nous ! Vous recevrez à nouveau nos messages de campagne. "
            "Envoyez STOP à tout moment pour ne plus les recevoir."
        ),
    },
    KeywordKind.help: {
        "es": (
            "Te orientamos gratis con fuentes oficiales para migrar de forma segura y regular. "
            "Escribe MENU (temas), BAJA (no recibir mensajes) o BORRAR (borrar tus datos)."
        ),
        "en": (
            "This service gives free information on safe, regular migration from official "
            "sources. Send MENU for topics, STOP to stop messages, DELETE to erase your data."
        ),
        "ht": (
            "Enfòmasyon gratis sou migrasyon san danje e regilye, ki soti nan sous ofisyèl. "
            "Voye MENU pou wè sijè yo, KANPE pou sispann mesaj yo, EFASE pou efase done w yo."
        ),
        "fr": (
            "Infos gratuites et officielles pour migrer en sécurité et en règle. Envoyez MENU "
            "(thèmes), STOP (ne plus recevoir de messages) ou EFFACER (effacer vos données)."
        ),
    },
    KeywordKind.erase: {
        "es": (
            "Listo, borramos de nuestro servicio tu teléfono y tus mensajes. "
            "Puedes volver a escribirnos cuando quieras."
        ),
        "en": (
            "Done: your number and your messages have been deleted from our service. "
            "You can write to us again at any time."
        ),
        "ht": (
            "Sa fèt: nou efase nimewo w ak mesaj ou yo nan sèvis nou an. "
            "Ou ka ekri nou ankò nenpòt ki lè."
        ),
        "fr": (
            "C'est fait : votre numéro et vos messages ont été supprimés de notre service. "
            "Vous pouvez nous écrire à nouveau quand vous le souhaitez."
        ),
    },
}

_FALLBACK_LANGUAGE: Final[Language] = "es"


def confirmation(kind: KeywordKind | str, language: str) -> str:
    """The reply confirming ``kind`` to a contact who speaks ``language``.

    An unknown language gets Spanish, the language of most of the region: a consent change is
    always confirmed.  An unknown kind raises ``ValueError``.
    """
    by_language = _CONFIRMATIONS[KeywordKind(kind)]
    return by_language.get(language, by_language[_FALLBACK_LANGUAGE])
