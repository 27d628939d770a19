"""How large a zip archive's directory says it is, read before :mod:`zipfile`
reads it.

``zipfile.ZipFile`` reads an archive's whole central directory at once and
makes an object of every entry: a few megabytes of crafted directory cost
hundreds of megabytes and seconds before anything can be checked (a million
empty entries took 480 MB and 6 s). Model files (:mod:`skmnist._persistence`)
and ``mnist.npz`` (:mod:`skmnist.datasets`) hold a handful of members, so their
readers ask :func:`declared_directory` first and refuse a directory larger
than theirs can be.
"""

import struct

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
