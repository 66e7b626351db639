"""Reads one file field of a multipart/form-data body with the standard library's e-mail
parser (the sandbox needs no form-parsing dependency for its one upload route)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP


@dataclass(frozen=True)
class UploadedFile:
    content_type: str
    data: bytes


def read_file_field(content_type: str, body: bytes, field: str) -> UploadedFile | None:
    """The named field's content, or None when the body is not multipart or lacks it."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    document = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = BytesParser(policy=HTTP, _class=EmailMessage).parsebytes(document)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != field:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return None
        return UploadedFile(part.get_content_type(), payload)
    return None
