"""The four languages Faro speaks, and the default language of a country."""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["es", "en", "ht", "fr"]
LANGUAGES: tuple[str, ...] = get_args(Language)

_COUNTRY_LANGUAGE: dict[str, str] = {
    "HT": "ht",
    # English-speaking countries of the region, and the main destinations.
    **dict.fromkeys(
        ["BZ", "GY", "JM", "BS", "BB", "TT", "AG", "DM", "GD", "KN", "LC", "VC", "US", "CA"],
        "en",
    ),
    **dict.fromkeys(["GP", "MQ", "GF", "BL", "MF", "FR"], "fr"),
}


def default_language_for_country(country: str | None) -> str:
    """Spanish unless the country mainly speaks Haitian Creole, English or French."""
    return _COUNTRY_LANGUAGE.get((country or "").upper(), "es")
