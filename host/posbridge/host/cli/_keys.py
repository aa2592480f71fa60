"""Key material for the subcommands, read from a file so that it never shows in the process list.

A key given as a command-line argument is visible to every local user in ``ps`` and
``/proc/<pid>/cmdline`` (and often lands in shell history); a key file, a pipe or process
substitution (``--bdk-file <(secret-tool lookup ...)``) is not. The file holds the key as hex text
(ANSI X9.24 keys are exchanged that way); whitespace anywhere, such as a final newline, is ignored.
"""

from __future__ import annotations

from posbridge.protocols.errors import KeyMaterialError, UsageError

#: A key file larger than this is not a key file (and a device such as /dev/zero is not read forever).
MAX_KEY_FILE_BYTES = 4096


def parse_hex_key(text: str, option: str, what: str, lengths: tuple[int, ...]) -> bytes:
    """Decode hex ``text`` to a key of one of ``lengths`` bytes, else :class:`UsageError`.

    The message names ``option`` and never quotes the text.
    """
    from posbridge.protocols.dukpt import parse_hex

    try:
        return parse_hex(text, what, lengths)
    except KeyMaterialError as error:
        raise UsageError(f"{option}: {error.message}") from None


def read_hex_key_file(path: str, option: str, what: str, lengths: tuple[int, ...]) -> bytes:
    """The key held as hex text in the file at ``path``, of one of ``lengths`` bytes.

    Raises :class:`UsageError` naming ``option`` and ``path`` (never the file's contents) when the
    file cannot be read, is larger than :data:`MAX_KEY_FILE_BYTES`, is not hex text or holds a key
    of another length.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot read it: {error.strerror or error}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{option} {path}: over {MAX_KEY_FILE_BYTES} bytes, not a key file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path}: {what} must be hex text") from None
    return parse_hex_key(text, f"{option} {path}", what, lengths)
