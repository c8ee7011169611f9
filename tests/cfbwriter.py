"""Write small OLE2 compound files (MS-CFB, version 3) and Outlook .msg files for tests.

Real .msg, .doc and .xls files are OLE2 containers; the router tells them apart by their
directory and opens .msg with extract-msg. These helpers build such files at test time:
`compound_file({"WordDocument": b"..."})` for a .doc-like container, `outlook_msg(...)` for
a message with a body and attachments (MS-OXMSG: property streams and substg streams).
Streams under 4096 bytes go to the mini stream, as the format requires.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field

SECTOR = 512
MINI = 64
CUTOFF = 4096
FREE, END, FAT_SECTOR, NONE = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF

# A storage is a dict of name -> bytes (stream) or dict (storage).
Tree = dict[str, "bytes | Tree"]


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[int] = field(default_factory=list)
    start: int = END
    left: int = NONE
    right: int = NONE
    child: int = NONE


def _flatten(tree: Tree, entries: list[_Entry], parent: int) -> None:
    """Add a storage's children to `entries`, chained in the order CFB sorts names."""
    ordered = sorted(tree, key=lambda name: (len(name), name.upper()))
    ids = []
    for name in ordered:
        value = tree[name]
        entry = _Entry(name, 1 if isinstance(value, dict) else 2)
        if isinstance(value, bytes):
            entry.data = value
        entries.append(entry)
        ids.append(len(entries) - 1)
        if isinstance(value, dict):
            _flatten(value, entries, ids[-1])
    for here, following in itertools.pairwise(ids):
        entries[here].right = following  # a legal (if unbalanced) all-black tree
    entries[parent].child = ids[0] if ids else NONE


def _chain(fat: list[int], start: int, count: int) -> None:
    """Link `count` sectors from `start` in a FAT."""
    for offset in range(count):
        fat[start + offset] = start + offset + 1 if offset < count - 1 else END


def compound_file(tree: Tree) -> bytes:
    """An OLE2 compound file holding `tree` (streams as bytes, storages as dicts)."""
    entries = [_Entry("Root Entry", 5)]
    _flatten(tree, entries, 0)
    mini_stream, mini_fat = b"", []
    big: list[_Entry] = []
    for entry in entries[1:]:
        if entry.kind != 2:
            continue
        if len(entry.data) >= CUTOFF:
            big.append(entry)
            continue
        count = max(1, -(-len(entry.data) // MINI)) if entry.data else 0
        if count:
            entry.start = len(mini_fat)
            mini_fat += [0] * count
            _chain(mini_fat, entry.start, count)
            mini_stream += entry.data.ljust(count * MINI, b"\0")
    entries[0].data = mini_stream
    sectors: list[bytes] = []
    fat: list[int] = []

    def place(data: bytes) -> int:
        count = max(1, -(-len(data) // SECTOR))
        start = len(sectors)
        for index in range(count):
            sectors.append(data[index * SECTOR : (index + 1) * SECTOR].ljust(SECTOR, b"\0"))
        fat.extend([0] * count)
        _chain(fat, start, count)
        return start

    directory_start = place(b"\0" * (128 * len(entries)))  # filled in below
    mini_fat_bytes = b"".join(struct.pack("<I", v) for v in mini_fat)
    mini_fat_start = place(mini_fat_bytes) if mini_fat else END
    if mini_stream:
        entries[0].start = place(mini_stream)
    for entry in big:
        entry.start = place(entry.data)
    fat_count = 1
    while (len(sectors) + fat_count) * 4 > fat_count * SECTOR:
        fat_count += 1
    fat_start = len(sectors)
    fat.extend([FAT_SECTOR] * fat_count)
    fat_bytes = b"".join(struct.pack("<I", v) for v in fat).ljust(fat_count * SECTOR, b"\xff")
    directory = b"".join(_directory_entry(entry) for entry in entries)
    directory = directory.ljust(len(entries) * 128, b"\0")
    count = -(-len(directory) // SECTOR)
    for index in range(count):
        chunk = directory[index * SECTOR : (index + 1) * SECTOR]
        sectors[directory_start + index] = chunk.ljust(SECTOR, b"\0")
    for index in range(fat_count):
        sectors.append(fat_bytes[index * SECTOR : (index + 1) * SECTOR])
    difat = [fat_start + i for i in range(fat_count)] + [FREE] * (109 - fat_count)
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16
    header += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\0" * 6
    header += struct.pack(
        "<IIIIIIIII",
        0,
        fat_count,
        directory_start,
        0,
        CUTOFF,
        mini_fat_start,
        max(1, -(-len(mini_fat_bytes) // SECTOR)) if mini_fat else 0,
        END,
        0,
    )
    header += b"".join(struct.pack("<I", v) for v in difat)
    return header.ljust(SECTOR, b"\0") + b"".join(sectors)


def _directory_entry(entry: _Entry) -> bytes:
    """One 128-byte directory entry."""
    name = entry.name.encode("utf-16-le") + b"\0\0"
    size = len(entry.data) if entry.kind != 1 else 0
    start = entry.start if entry.kind != 1 else 0
    return (
        name.ljust(64, b"\0")
        + struct.pack("<HBB", len(name), entry.kind, 1)
        + struct.pack("<III", entry.left, entry.right, entry.child)
        + b"\0" * 16  # CLSID
        + b"\0" * 4  # state bits
        + b"\0" * 16  # creation and modification times
        + struct.pack("<IQ", start, size)
    )


def _unicode(prop: int) -> tuple[str, int]:
    """The substg stream name of a PT_UNICODE property id, and its property tag."""
    return f"__substg1.0_{prop:04X}001F", (prop << 16) | 0x001F


def _properties(header: bytes, values: dict[int, bytes]) -> bytes:
    """A __properties_version1.0 stream: variable-size properties carry their size."""
    body = b""
    for tag, data in values.items():
        body += struct.pack("<IIII", tag, 6, len(data) + (2 if tag & 0xFFFF == 0x1F else 0), 0)
    return header + body


def _message_tree(
    subject: str, body: str, attachments: list[tuple[str, bytes | Tree]], top: bool
) -> Tree:
    """The storages and streams of one message (MS-OXMSG)."""
    strings = {0x001A: "IPM.Note", 0x0037: subject, 0x1000: body}
    tree: Tree = {}
    tags: dict[int, bytes] = {}
    for prop, text in strings.items():
        name, tag = _unicode(prop)
        tree[name] = text.encode("utf-16-le")
        tags[tag] = tree[name]  # type: ignore[assignment]
    header = (
        struct.pack("<8xIIII8x", 0, len(attachments), 0, len(attachments))
        if top
        else (struct.pack("<8xIIII", 0, len(attachments), 0, len(attachments)))
    )
    tree["__properties_version1.0"] = _properties(header, tags)
    if top:
        tree["__nameid_version1.0"] = {
            "__substg1.0_00020102": b"",
            "__substg1.0_00030102": b"",
            "__substg1.0_00040102": b"",
        }
    for number, (filename, content) in enumerate(attachments):
        tree[f"__attach_version1.0_#{number:08X}"] = _attachment(filename, content)
    return tree


def _attachment(filename: str, content: bytes | Tree) -> Tree:
    """An attachment storage: by value (bytes) or an embedded message (a message tree)."""
    name_stream, name_tag = _unicode(0x3707)
    tree: Tree = {name_stream: filename.encode("utf-16-le")}
    method = 5 if isinstance(content, dict) else 1  # ATTACH_EMBEDDED_MSG or ATTACH_BY_VALUE
    values = {name_tag: tree[name_stream]}
    if isinstance(content, dict):
        tree["__substg1.0_3701000D"] = content
    else:
        tree["__substg1.0_37010102"] = content
        values[0x37010102] = content
    stream = _properties(b"\0" * 8, values)  # type: ignore[arg-type]
    stream += struct.pack("<IIII", 0x37050003, 6, method, 0)
    tree["__properties_version1.0"] = stream
    return tree


def outlook_msg(
    subject: str,
    body: str,
    attachments: list[tuple[str, bytes | Tree]] = (),  # type: ignore[assignment]
) -> bytes:
    """An Outlook .msg file: `attachments` are (filename, bytes) or (filename, embedded
    message tree from `embedded_msg`)."""
    return compound_file(_message_tree(subject, body, list(attachments), top=True))


def embedded_msg(subject: str, body: str, attachments: list[tuple[str, bytes | Tree]]) -> Tree:
    """A message to attach inside another .msg (Outlook's "attach item")."""
    return _message_tree(subject, body, attachments, top=False)
