"""Bytes of a page -> text: binary payloads refused, then the charset picked the way browsers pick it.

Order: a byte-order mark, the HTTP Content-Type charset, the HTML/XML declared charset, strict UTF-8,
UTF-8 with a few bad bytes replaced, then charset_normalizer's detection. A body nothing decodes
sensibly is an "invalid_encoding" rejection rather than a page of mojibake.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

#: content types whose payload is text (everything under text/ is text too)
_TEXT_APPLICATION = re.compile(r"^application/(xhtml\+xml|xml|json|ld\+json|javascript|ecmascript|x-javascript"
                               r"|rss\+xml|atom\+xml|[\w.+-]*\+xml|[\w.+-]*\+json)$")
_BINARY_MAJOR = ("image/", "audio/", "video/", "font/", "model/", "multipart/")
#: leading bytes of common binary formats served under a wrong (text) content type
_BINARY_MAGIC = (b"%PDF-", b"\x89PNG\r\n", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"PK\x03\x04",
                 b"\x1f\x8b\x08", b"\x7fELF", b"RIFF", b"OggS", b"wOFF", b"wOF2")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.I)
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]{0,100}?encoding\s*=\s*[\"']([\w.:-]+)", re.I)
#: labels browsers read as windows-1252 (a superset that decodes every byte the same or better)
_AS_CP1252 = {"iso8859-1", "latin-1", "ascii", "us-ascii", "iso-8859-1"}
#: the head of a body that charset and binary sniffing look at (browsers' meta prescan reads 1024 bytes; a
#: little more finds an XML declaration or a magic number after a long doctype)
_SNIFF_BYTES = 4096
_NUL = b"\x00"


@dataclass(frozen=True)
class Decoded:
    """Either `text` (and the `encoding` it came from, and how it was chosen) or a rejection `reason`."""

    text: str | None
    encoding: str = ""
    how: str = ""
    reason: str = ""
    detail: str = ""


def media_type(content_type: str | None) -> str:
    """"text/html; charset=utf-8" -> "text/html" (lower-case, no parameters)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None) -> str | None:
    m = _CHARSET_PARAM.search(content_type or "")
    return m.group(1) if m else None


def is_text_type(mtype: str) -> bool:
    return not mtype or mtype.startswith("text/") or bool(_TEXT_APPLICATION.match(mtype))


def binary_reason(body: bytes, content_type: str | None) -> str:
    """Why `body` is not text ("" when it is): a non-text media type, a binary signature or NUL bytes."""
    mtype = media_type(content_type)
    if mtype.startswith(_BINARY_MAJOR) or (mtype.startswith("application/") and not is_text_type(mtype)):
        return f"content type {mtype!r} is not text"
    head = body[:16]
    for magic in _BINARY_MAGIC:
        if head.startswith(magic):
            return f"payload starts with the signature of a binary format ({magic[:5]!r})"
    if _NUL in body:
        declared = (charset_of(content_type) or "").lower()
        wide = declared.startswith(("utf-16", "utf-32")) or body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        if not wide:
            return f"payload contains NUL bytes (first at byte {body.index(_NUL)})"
    return ""


def _codec(label: str | bytes | None) -> str | None:
    """A Python codec name for a declared charset label, or None if Python does not know it."""
    if not label:
        return None
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return "cp1252" if name in _AS_CP1252 or label.lower() in _AS_CP1252 else name


def _declared_in_markup(body: bytes) -> str | None:
    head = body[:_SNIFF_BYTES]
    m = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return _codec(m.group(1)) if m else None


def _try(body: bytes, encoding: str | None) -> str | None:
    if not encoding:
        return None
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _detect(body: bytes) -> tuple[str, str] | None:
    try:
        import charset_normalizer
    except ImportError:  # the detector is optional: without it, undecodable bodies are simply rejected
        return None
    best = charset_normalizer.from_bytes(body).best()
    if best is None:
        return None
    return str(best), best.encoding


def decode_body(body: bytes, content_type: str | None = None, max_invalid_utf8_fraction: float = 0.001) -> Decoded:
    """Text of a page body; never raises. Call `binary_reason` first: this assumes a text payload."""
    if not body:
        return Decoded("", "utf-8", "empty")
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            text = _try(body, encoding)
            if text is not None:
                return Decoded(text, encoding, "bom")
    for how, encoding in (("http-header", _codec(charset_of(content_type))), ("markup", _declared_in_markup(body)),
                          ("utf-8", "utf-8")):
        text = _try(body, encoding)
        if text is not None:
            return Decoded(text, encoding, how)
    lenient = body.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd") - body.count("\ufffd".encode())
    if bad <= max_invalid_utf8_fraction * len(body):
        return Decoded(lenient, "utf-8", "utf-8-replaced")
    detected = _detect(body)
    if detected is not None:
        return Decoded(detected[0], detected[1], "detected")
    return Decoded(None, reason="invalid_encoding",
                   detail=f"not valid in the declared charset ({charset_of(content_type) or 'none'}) nor UTF-8 "
                          f"({bad} bad bytes of {len(body)}), and no charset detected")
