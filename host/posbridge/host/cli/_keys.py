"""Key material for the subcommands, read from a file so that it never shows in the process list.

A key given as a command-line argument is visible to every local user in ``ps`` and
``/proc/<pid>/cmdline`` (and often lands in shell history); a key file, a pipe or process
substitution (``--bdk-file <(secret-tool lookup ...)``) is not. The file holds the key as hex text
(ANSI X9.24 keys are exchanged that way); whitespace anywhere, such as a final newline, is ignored.
A terminal is refused (a key typed there is echoed), and a pipe or FIFO that stays silent for
:data:`KEY_FILE_TIMEOUT_S` is an error rather than a hang.
"""

from __future__ import annotations

import os
import select
import time

from posbridge.protocols.errors import KeyMaterialError, UsageError

#: DUKPT BDK sizes in bytes: AES-128/192/256 (X9.24-3) or a double/triple-length TDES key (X9.24-1).
BDK_LENGTHS = (16, 24, 32)

#: A key file larger than this is not a key file (and a device such as /dev/zero is not read forever).
MAX_KEY_FILE_BYTES = 4096

#: How long a pipe or FIFO may stay silent (no data, no end) before reading a key from it fails.
KEY_FILE_TIMEOUT_S = 60.0


def parse_hex_key(text: str, option: str, what: str, lengths: tuple[int, ...]) -> bytes:
    """Decode hex ``text`` to a key of one of ``lengths`` bytes, else :class:`UsageError`.

    The message names ``option`` and never quotes the text.
    """
    from posbridge.protocols.dukpt import parse_hex

    try:
        return parse_hex(text, what, lengths)
    except KeyMaterialError as error:
        raise UsageError(f"{option}: {error.message}") from None


def read_hex_key_file(
    path: str, option: str, what: str, lengths: tuple[int, ...], timeout_s: float = KEY_FILE_TIMEOUT_S
) -> bytes:
    """The key held as hex text in the file at ``path``, of one of ``lengths`` bytes.

    Raises :class:`UsageError` naming ``option`` and ``path`` (never the file's contents) when the
    file cannot be read, is a terminal, is a pipe or FIFO that sends nothing more for
    ``timeout_s`` seconds, is larger than :data:`MAX_KEY_FILE_BYTES`, is not hex text or holds a
    key of another length.
    """
    where = f"{option} {path}"
    try:
        data = _read_capped(path, where, timeout_s)
    except OSError as error:
        raise UsageError(f"{where}: cannot read it: {error.strerror or error}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{where}: over {MAX_KEY_FILE_BYTES} bytes, not a key file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: {what} must be hex text") from None
    return parse_hex_key(text, where, what, lengths)


def _read_capped(path: str, where: str, timeout_s: float) -> bytes:
    """Up to ``MAX_KEY_FILE_BYTES + 1`` bytes of ``path``, waiting at most ``timeout_s`` in all.

    Opened without blocking, so a FIFO nobody has opened for writing does not hang the open; then
    each read waits in :func:`select.poll`, which on a FIFO waits for a writer to come and write
    or go (the end of the key).
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if os.isatty(descriptor):
            raise UsageError(f"{where}: a terminal; give the key in a file or a pipe, not typed in")
        poller = select.poll()
        poller.register(descriptor, select.POLLIN)
        chunks: list[bytes] = []
        size = 0
        deadline = time.monotonic() + timeout_s
        while size <= MAX_KEY_FILE_BYTES:
            if not poller.poll(max(deadline - time.monotonic(), 0.0) * 1000):
                raise UsageError(
                    f"{where}: nothing to read within {timeout_s:g} s (a FIFO nobody writes to?)"
                )
            try:
                chunk = os.read(descriptor, MAX_KEY_FILE_BYTES + 1 - size)
            except BlockingIOError:
                continue
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(descriptor)
