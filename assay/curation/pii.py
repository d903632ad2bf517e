"""PII masking: e-mail and public IP addresses, with datatrove's patterns and fixed replacements.

datatrove's formatter cycles through several replacement strings, which makes the output depend on
processing order; we give it one replacement each so a rerun (on any number of workers) is identical.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from assay.curation.document import Document, Rejection
from assay.curation.stage import Stage


@dataclass
class PIIConfig:
    """The `pii` stage: what datatrove's PIIFormatter masks, and the one replacement for each."""

    mask_emails: bool = True  # replace e-mail addresses
    mask_ips: bool = True  # replace IP addresses
    only_public_ips: bool = True  # leave private and reserved addresses (10.x, 127.x, ...) as they are
    email_replacement: str = "email@example.com"  # example.com: reserved for documentation (RFC 2606)
    ip_replacement: str = "192.0.2.1"  # TEST-NET-1: a documentation address, never a real host


class MaskPII(Stage):
    name = "pii"

    def __init__(self, cfg: PIIConfig | None = None):
        self.cfg = cfg or PIIConfig()
        self._fmt = None

    def setup(self) -> None:
        if self._fmt is None:
            from datatrove.pipeline.formatters import PIIFormatter

            c = self.cfg
            self._fmt = PIIFormatter(remove_emails=c.mask_emails, remove_ips=c.mask_ips,
                                     only_remove_public_ips=c.only_public_ips,
                                     email_replacement=c.email_replacement, ip_replacement=c.ip_replacement)

    @property
    def columns(self) -> dict[str, pa.DataType]:
        return {"pii_emails": pa.int64(), "pii_ips": pa.int64()}

    def count(self, text: str) -> tuple[int, int]:
        self.setup()
        emails = len(self._fmt.emails_replacer.regex.findall(text)) if self.cfg.mask_emails else 0
        ip = self._fmt.ip_replacer
        ips = sum(1 for m in ip.regex.finditer(text) if ip.validator(m.group(0))) if self.cfg.mask_ips else 0
        return emails, ips

    def process(self, doc: Document) -> Document | Rejection:
        self.setup()
        emails, ips = self.count(doc.text)
        text = self._fmt.format(doc.text) if emails or ips else doc.text
        return doc.with_text(text).with_meta(pii_emails=emails, pii_ips=ips)
