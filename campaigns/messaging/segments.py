"""SMS encoding, segments and cost: what a campaign author sees before pressing send.

An SMS travels as GSM-7 when every character is in the GSM 03.38 default alphabet (3GPP TS
23.038), and as UCS-2 otherwise; one character outside GSM-7 turns the whole message into UCS-2.

=========  ==============  ======================  ============================================
encoding   one segment     each concatenated part  what counts as one unit
=========  ==============  ======================  ============================================
GSM-7      160 septets     153 septets             a septet; the extension table costs 2
UCS-2      70 code units   67 code units           a UTF-16 code unit; most emoji cost 2
=========  ==============  ======================  ============================================

Concatenated parts are smaller because each carries a 6-byte header.  Carriers and Twilio never
split an escape pair (``ESC`` + extension character) or a surrogate pair across two parts: a
2-unit character that does not fit in the last unit of a part starts the next one, so a part may
end one unit short.

These figures are SMS only.  WhatsApp bills per conversation, not per segment, and Twilio's
*Smart Encoding* (which swaps smart quotes and similar for GSM-7 look-alikes) is deliberately not
modelled: we count what we send.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Literal

from campaigns.errors import InvalidInput

Encoding = Literal["GSM-7", "UCS-2"]

#: Twilio rejects a message ``Body`` over 1,600 characters (error 21617), on every channel.  It
#: does not say how it counts an emoji, so we count UTF-16 code units (an emoji counts 2): never
#: more lenient than counting code points.
MAX_BODY_CHARACTERS: Final = 1600

GSM7_SINGLE: Final = 160
GSM7_PART: Final = 153
UCS2_SINGLE: Final = 70
UCS2_PART: Final = 67

# GSM 03.38 default alphabet, in code order 0x00-0x7F.  0x1B is the escape to the extension
# table and has no character of its own.  0x09 is Ç (capital) in the standard: a lowercase ç
# is *not* GSM-7, whatever some handsets display.
_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each is sent as ESC + code, so it costs 2 septets.
_GSM7_EXTENSION: Final = frozenset("\f^{}\\[~]|€")


@dataclass(frozen=True, slots=True)
class SmsLength:
    """How an SMS body will be encoded and how many segments it costs.

    ``characters`` counts Unicode code points (what a person counts); ``units`` counts septets
    for GSM-7 and UTF-16 code units for UCS-2 (what the network counts).  ``ucs2_characters``
    lists, once each and in order of first appearance, the characters that forced UCS-2; it is
    empty for GSM-7.
    """

    encoding: Encoding
    characters: int
    units: int
    segments: int
    ucs2_characters: tuple[str, ...]

    @property
    def within_twilio_limit(self) -> bool:
        """Whether Twilio accepts the text as one message body (see ``MAX_BODY_CHARACTERS``)."""
        # GSM-7 has no character outside the BMP, so there code points are UTF-16 code units.
        utf16_units = self.units if self.encoding == "UCS-2" else self.characters
        return utf16_units <= MAX_BODY_CHARACTERS


def non_gsm7_characters(text: str) -> tuple[str, ...]:
    """The distinct characters of ``text`` outside GSM-7, in order of first appearance."""
    return tuple(
        dict.fromkeys(c for c in text if c not in _GSM7_BASIC and c not in _GSM7_EXTENSION)
    )


def is_gsm7(text: str) -> bool:
    """Whether ``text`` can be sent in GSM-7 (the cheap, 160-character encoding)."""
    return not non_gsm7_characters(text)


def within_twilio_limit(text: str) -> bool:
    """Whether Twilio accepts ``text`` as one message body (see ``MAX_BODY_CHARACTERS``)."""
    return _utf16_units(text) <= MAX_BODY_CHARACTERS


def measure(text: str) -> SmsLength:
    """Encoding, length and segment count of ``text`` sent as one SMS.

    An empty text costs 0 segments: Twilio refuses a message with neither body nor media.
    """
    forcing = non_gsm7_characters(text)
    encoding: Encoding = "UCS-2" if forcing else "GSM-7"
    costs = _unit_costs(text, encoding)
    return SmsLength(
        encoding=encoding,
        characters=len(text),
        units=sum(costs),
        segments=len(_parts(costs, encoding)),
        ucs2_characters=forcing,
    )


def split_segments(text: str) -> list[str]:
    """``text`` cut where the network cuts it: each item is what one segment carries."""
    encoding: Encoding = "UCS-2" if non_gsm7_characters(text) else "GSM-7"
    return [text[start:end] for start, end in _parts(_unit_costs(text, encoding), encoding)]


def estimate_cost(text: str, *, price_per_segment: Decimal, recipients: int = 1) -> Decimal:
    """Price of sending ``text`` to ``recipients`` contacts: segments x price x recipients.

    An estimate: the carrier's price per segment varies by destination country and changes
    over time, and Twilio reports the real price of each message afterwards.
    """
    if price_per_segment < 0:
        raise InvalidInput("price per segment cannot be negative", field="price_per_segment")
    if recipients < 0:
        raise InvalidInput("recipients cannot be negative", field="recipients")
    return measure(text).segments * price_per_segment * recipients


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _unit_costs(text: str, encoding: Encoding) -> list[int]:
    """Units each character of ``text`` (a code point) takes in ``encoding``."""
    if encoding == "GSM-7":
        return [2 if c in _GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def _parts(costs: list[int], encoding: Encoding) -> list[tuple[int, int]]:
    """``(start, end)`` character ranges of each segment, never splitting a 2-unit character."""
    if not costs:
        return []
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if sum(costs) <= single:
        return [(0, len(costs))]
    ranges: list[tuple[int, int]] = []
    start = used = 0
    for index, cost in enumerate(costs):
        if used + cost > part:
            ranges.append((start, index))
            start, used = index, 0
        used += cost
    ranges.append((start, len(costs)))
    return ranges
