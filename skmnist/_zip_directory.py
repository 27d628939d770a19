"""How large a zip archive's directory says it is, read before :mod:`zipfile`
reads it.

``zipfile.ZipFile`` reads an archive's whole central directory at once and
makes an object of every entry: a few megabytes of crafted directory cost
hundreds of megabytes and seconds before anything can be checked (a million
empty entries took 480 MB and 6 s). Model files (:mod:`skmnist._persistence`)
and ``mnist.npz`` (:mod:`skmnist.datasets`) hold a handful of members, so their
readers ask :func:`declared_directory` first and refuse a directory larger
than theirs can be, then :func:`member_problem` of what zipfile parsed, before
they read any member.
"""

import itertools
import struct
import zipfile

# The records at the end of a zip file that say where its directory is and how
# large (APPNOTE.TXT 4.3.14 to 4.3.16), as zipfile reads them.
_END_RECORD = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_ZIP64_END_RECORD = struct.Struct("<4sQ2H2L4Q")
_ZIP64_END_SIGNATURE = b"PK\x06\x06"
_MAX_COMMENT_BYTES = 2**16


def declared_directory(file, length: int) -> tuple[int, int] | None:
    """The number of entries and the bytes of the zip directory of ``file``
    (an open binary file of ``length`` bytes), as zipfile would read them; the
    larger where the records disagree. ``None`` where no end record is found
    (zipfile then calls the file damaged).

    The records are found as zipfile finds them: the end of central directory
    record is the file's last 22 bytes, or else the last of its signature in
    the last 64 KiB and 22 bytes (an archive comment may follow it); a ZIP64
    locator just before it points to a ZIP64 end record, whose counts zipfile
    takes instead (from just before the locator, or where the locator says,
    depending on the Python version: both are read).
    """
    start = max(0, length - _MAX_COMMENT_BYTES - _END_RECORD.size)
    file.seek(start)
    tail = file.read()
    at = len(tail) - _END_RECORD.size
    if not (at >= 0 and tail.startswith(_END_SIGNATURE, at) and tail.endswith(b"\0\0")):
        at = tail.rfind(_END_SIGNATURE)
    if at < 0 or len(tail) - at < _END_RECORD.size:
        return None
    record = _END_RECORD.unpack_from(tail, at)
    declared = [(max(record[3:5]), record[5])]  # entries (here, in all), bytes
    locator_at = start + at - _ZIP64_LOCATOR.size
    if locator_at >= 0:
        file.seek(locator_at)
        locator = file.read(_ZIP64_LOCATOR.size)
        if locator.startswith(_ZIP64_LOCATOR_SIGNATURE):
            # The ZIP64 record's counts replace the end record's (which then
            # hold 0xFFFF and 0xFFFFFFFF as "see ZIP64").
            offset = _ZIP64_LOCATOR.unpack(locator)[2]
            zip64 = []
            for where in {locator_at - _ZIP64_END_RECORD.size, offset}:
                if where < 0:
                    continue
                file.seek(where)
                data = file.read(_ZIP64_END_RECORD.size)
                if len(data) == _ZIP64_END_RECORD.size and data.startswith(
                    _ZIP64_END_SIGNATURE
                ):
                    record = _ZIP64_END_RECORD.unpack(data)
                    zip64.append((max(record[6:8]), record[8]))
            declared = zip64 or declared
    return max(entries for entries, _ in declared), max(size for _, size in declared)


# General-purpose bit flags zipfile cannot read, or reads only with a password:
# encrypted (bit 0), compressed patched data (bit 5), strong encryption (bit 6).
_UNREADABLE_FLAGS = 0x1 | 0x20 | 0x40


def member_problem(infos: list[zipfile.ZipInfo], length: int) -> str | None:
    """What is wrong with the members of an archive of ``length`` bytes, as its
    directory declares them, for a reader that inflates nothing it has not
    checked; ``None`` if nothing is.

    Each member must be stored or deflated (zipfile inflates bzip2 and LZMA
    without bound, and refuses other methods with exceptions of its own),
    neither encrypted nor patched, and its compressed data must lie within the
    file and apart from every other member's: in an archive as writers make
    it, the members follow one another, so that none can claim another's bytes
    (several members claiming the same few kilobytes of deflated zeros would
    each pass a limit on their own compression ratio).
    """
    spans = []
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return f"{info.filename} is compressed with method {info.compress_type}"
        if info.flag_bits & _UNREADABLE_FLAGS:
            return f"{info.filename} is encrypted or patched"
        # (From the local header on: its own length, 30 bytes and the name,
        # only makes the span longer, so this never calls neighbours overlapping.)
        start, end = info.header_offset, info.header_offset + info.compress_size
        if start < 0 or end > length:
            return f"{info.filename} ends beyond the end of the file"
        spans.append((start, end, info.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if end > start:
            return f"{name} overlaps {other}"
    return None
