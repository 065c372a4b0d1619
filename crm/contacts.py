"""Normalised contact data, so one person is recognised however a form or a call centre wrote them down."""

import re

DEFAULT_COUNTRY = "7"  # Russia: a national number starts with 8 or has 10 digits
_SPACES = re.compile(r"\s+")
LEGAL_FORMS = ("ООО", "АО", "ПАО", "ЗАО", "ОАО", "ИП", "НКО", "LLC", "LTD", "INC", "GMBH")
_LEGAL_PREFIX = re.compile(r"^(" + "|".join(LEGAL_FORMS) + r")\s+", re.IGNORECASE)


def normalise_email(email: str | None) -> str | None:
    """Lowercased and stripped; None for an empty value."""
    email = (email or "").strip().lower()
    return email or None


def normalise_phone(phone: str | None) -> str | None:
    """Digits with the country code: '+7 (999) 123-45-67', '8 999 123 45 67' and '9991234567' -> '79991234567'."""
    digits = re.sub(r"\D", "", phone or "")
    if not digits:
        return None
    if len(digits) == 11 and digits.startswith("8") and not (phone or "").lstrip().startswith("+"):
        return DEFAULT_COUNTRY + digits[1:]
    if len(digits) == 10:
        return DEFAULT_COUNTRY + digits
    return digits


def name_key(name: str) -> str:
    """A company name for matching: quotes and a leading legal form dropped, spaces collapsed, case-folded
    ('ООО «Ромашка»' ~ 'ромашка'), since forms write the legal form into the name as often as not."""
    text = _SPACES.sub(" ", re.sub(r"[\"'«»“”„]", "", name or "")).strip()
    return _LEGAL_PREFIX.sub("", text).casefold()
