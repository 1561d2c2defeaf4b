import struct

from kubecost_etl.etl.bingen import check_header


def set_file(strings=(b"cluster-one", b"namespace"), version=22, body=b"\x01" * 100):
    out = b"BGST" + struct.pack("<i", len(strings))
    for s in strings:
        out += struct.pack("<H", len(s)) + s
    return out + bytes([version]) + body


def test_valid_header():
    check = check_header(set_file())
    assert check.ok and check.version == 22 and check.header_bytes == 4 + 4 + 13 + 11 + 1


def test_bad_magic_truncation_and_versions():
    assert "magic" in check_header(b"PK\x03\x04rest").reason
    data = set_file()
    assert "ends inside the header" in check_header(data[:20]).reason
    assert "ends inside the header (codec version)" in check_header(set_file(body=b"")[:-1]).reason
    assert "implausible codec version" in check_header(set_file(version=0)).reason
    assert "implausible string count" in check_header(b"BGST" + struct.pack("<i", -1)).reason
    # a probe shorter than the file is not mistaken for truncation
    assert "longer than the" in check_header(data[:12], total_size=len(data)).reason
