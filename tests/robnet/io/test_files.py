"""robnet.io.files: the atomic writer, md5, download (through load_dataset and directly), safe extraction."""

import hashlib
import http.server
import io
import os
import re
import tarfile

import pytest
import torch

from robnet.data.datasets import load_dataset
from robnet.io.files import (
    atomic_open,
    atomic_write,
    download_file,
    extract_folder,
    file_md5,
    remove_stray_temporaries,
    safe_extract,
    temp_name,
)

# ------------------------------------------------------------------------------------------
# The atomic writer


def test_atomic_write_bytes_text_and_callable(tmp_path):
    assert atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "t.txt", "h\u00e9")
    assert (tmp_path / "t.txt").read_bytes() == "h\u00e9".encode()
    atomic_write(tmp_path / "c.pt", lambda f: torch.save({"x": torch.arange(3)}, f))
    assert torch.equal(torch.load(tmp_path / "c.pt", weights_only=True)["x"], torch.arange(3))
    with atomic_open(tmp_path / "t.txt", "w") as f:
        f.write("text mode")
    assert (tmp_path / "t.txt").read_text() == "text mode"
    assert sorted(os.listdir(tmp_path)) == ["a", "c.pt", "t.txt"]  # no temporaries left


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write(path, "old")

    def half_then_fail(f):
        f.write(b"new but incompl")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]
    with pytest.raises(ValueError, match=r"atomic_open writes whole files: mode must be 'wb' or 'w', got 'a'"), \
            atomic_open(path, "a"):
        pass


def test_temp_names_and_stray_cleanup(tmp_path):
    tmp = temp_name(tmp_path / "best.pt")
    assert tmp.parent == tmp_path and re.fullmatch(rf"\.best\.pt\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", tmp.name)
    assert temp_name(tmp_path / "best.pt") != tmp
    tmp.write_bytes(b"torn")
    (tmp_path / "best.pt").write_bytes(b"whole")
    (tmp_path / "notes.tmp").write_bytes(b"not hidden: kept")
    assert remove_stray_temporaries(tmp_path) == [tmp]
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "notes.tmp"]
    assert remove_stray_temporaries(tmp_path) == []


# ------------------------------------------------------------------------------------------
# md5, download_file, extraction (directly)


def test_file_md5_reads_in_chunks(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB: more than one 1 MiB chunk
    (tmp_path / "f").write_bytes(data)
    assert file_md5(tmp_path / "f") == hashlib.md5(data).hexdigest()


def test_download_file_directly(tmp_path, http_server):
    (http_server.dir / "x.bin").write_bytes(b"payload")
    md5 = hashlib.md5(b"payload").hexdigest()
    dest = tmp_path / "new" / "x.bin"
    assert download_file(http_server.url + "x.bin", dest, md5=md5, progress=False) == dest
    assert dest.read_bytes() == b"payload"
    dest.write_bytes(b"old")
    with pytest.raises(ValueError, match=r"md5 mismatch for the download of .*x\.bin: got [0-9a-f]{32}, "
                                         r"expected 0{32}; .*so it was deleted"):
        download_file(http_server.url + "x.bin", dest, md5="0" * 32, progress=False)
    assert dest.read_bytes() == b"old" and os.listdir(dest.parent) == ["x.bin"]
    with pytest.raises(ValueError, match=r"download_file: only http\(s\) URLs are supported, got 'file:///etc'"):
        download_file("file:///etc", dest, md5=md5)


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_safe_extract_and_extract_folder(tmp_path):
    good = _tar(tmp_path / "good.tar", [("pkg/a.txt", b"A"), ("pkg/sub/b.txt", b"B")])
    dest = tmp_path / "out"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "stale.txt").write_text("replaced with its folder")
    assert extract_folder(good, "pkg", dest, what="test") == dest
    assert (dest / "a.txt").read_bytes() == b"A" and sorted(os.listdir(dest / "sub")) == ["b.txt"]
    assert sorted(os.listdir(tmp_path)) == ["good.tar", "out"]  # the temporary folder is gone
    with pytest.raises(ValueError, match=r"good\.tar does not contain the folder other/\. Hint: it is not the "
                                         r"official test archive"):
        extract_folder(good, "other", tmp_path / "o2", what="test")
    assert sorted(os.listdir(tmp_path)) == ["good.tar", "out"]  # nothing created for a bad archive
    evil = _tar(tmp_path / "evil.tar", [("ok.txt", b"x"), ("/abs.txt", b"y")])
    with pytest.raises(ValueError, match=r"refusing to extract .*evil\.tar: member '/abs\.txt' is a path "
                                         r"outside the folder"):
        safe_extract(evil, tmp_path / "e")
    assert not (tmp_path / "e" / "ok.txt").exists()  # checked before anything is written


# ------------------------------------------------------------------------------------------
# Download


def test_download_from_local_server(tmp_path, http_server, make_cifar10_archive):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=10)
    root = tmp_path / "datasets"
    ds = load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                      progress=False)
    assert http_server.requests == ["/cifar-10-python.tar.gz"]
    assert file_md5(root / "cifar-10-python.tar.gz") == fake.md5s["cifar-10-python.tar.gz"]
    for name, md5 in fake.md5s.items():
        if name != "cifar-10-python.tar.gz":
            assert file_md5(root / "cifar-10-batches-py" / name) == md5
    assert ds.labels.tolist() == fake.labels["test_batch"]
    assert torch.equal(ds.images, torch.from_numpy(fake.images["test_batch"]).permute(0, 3, 1, 2))
    # verified files are not fetched again; a full URL (not a base) works too
    train = load_dataset("cifar10", root, "train", download=True, checksums=fake.md5s, progress=False,
                         url=http_server.url + "cifar-10-python.tar.gz")
    assert len(train) == 50 and len(http_server.requests) == 1
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_download_repairs_damaged_file(tmp_path, http_server, make_cifar10_archive):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=3)
    root = tmp_path / "datasets"
    load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                 progress=False)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    ds = load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                      progress=False)
    assert ds.labels.tolist() == fake.labels["test_batch"]
    assert len(http_server.requests) == 1  # the verified archive on disk was reused


def test_download_bad_md5_is_rejected_and_nothing_left(tmp_path, http_server, make_cifar10_archive):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=2)
    root = tmp_path / "datasets"
    wrong = {**fake.md5s, "cifar-10-python.tar.gz": "0" * 32}
    msg = (f"md5 mismatch for the download of {http_server.url}cifar-10-python.tar.gz: got "
           f"{fake.md5s['cifar-10-python.tar.gz']}, expected {'0' * 32}")
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=wrong,
                     progress=False)
    assert http_server.requests == ["/cifar-10-python.tar.gz"]
    assert list(root.iterdir()) == []  # no archive, no .part file, no extracted folder


def test_download_unreachable_server(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    with pytest.raises(ConnectionError, match=r"could not download http://127\.0\.0\.1:\d+/cifar-10-python"):
        load_dataset("cifar10", tmp_path, "test", download=True, url=f"http://127.0.0.1:{port}/",
                     progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_missing_file_on_server(tmp_path, http_server):
    with pytest.raises(ConnectionError, match=r"could not download .*cifar-10-python.tar.gz: HTTP 404"):
        load_dataset("cifar10", tmp_path / "d", "test", download=True, url=http_server.url, progress=False)
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("kind", ["escape", "symlink"])
def test_download_refuses_unsafe_archive(tmp_path, http_server, kind):
    archive = http_server.dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if kind == "escape":
            info = tarfile.TarInfo("cifar-10-batches-py/../../evil.txt")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    root = tmp_path / "datasets"
    with pytest.raises(ValueError, match=r"refusing to extract .*cifar-10-python.tar.gz: member "):
        load_dataset("cifar10", root, "test", download=True, url=http_server.url,
                     checksums={"cifar-10-python.tar.gz": file_md5(archive)}, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / "cifar-10-batches-py").exists()
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]  # no extraction leftovers
