"""The pod filesystem mapping and the exec shell/tools, without a server."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubecost_sim.execshell import ExecutableNotFound, busybox_toolbox, gnu_toolbox, run_exec
from kubecost_sim.podfs import ContainerFS, PathRefused

from tests.etl_trees import tree_digests

ETL = "/var/configs/db/etl"


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()


class Pod:
    """A cost-model container and a busybox debug container targeting it, over tmp folders."""

    def __init__(self, root: Path, with_tar: bool = True):
        self.db = root / "db"
        self.etl = self.db / "etl"
        files = {
            "bingen/assets/1d/100-200": b"a" * 1000,
            "bingen/assets/1h/100-200": b"b" * 10,
            "bingen/allocations/1d/100-200": os.urandom(70_000),
            "cloudcosts/x": b"",
        }
        for name, data in files.items():
            (self.etl / name).parent.mkdir(parents=True, exist_ok=True)
            (self.etl / name).write_bytes(data)
        self.fs = ContainerFS(root / "scratch" / "cost-model", {"/var/configs/db": self.db})
        self.toolbox = gnu_toolbox(with_tar=with_tar)
        self.debug_fs = ContainerFS(root / "scratch" / "debug", process_root=self.fs)

    def run(self, *argv: str, stdin: bytes = b"", debug: bool = False, stdout=None) -> Result:
        out, err = stdout or io.BytesIO(), io.BytesIO()
        fs, toolbox = (self.debug_fs, busybox_toolbox()) if debug else (self.fs, self.toolbox)
        code = run_exec(list(argv), fs, toolbox, io.BytesIO(stdin), out, err)
        return Result(code, out.getvalue(), err.getvalue().decode())

    def sh(self, script: str, **kwargs) -> Result:
        return self.run("sh", "-c", script, **kwargs)


@pytest.fixture
def pod(tmp_path: Path) -> Pod:
    return Pod(tmp_path)


# ------------------------------------------------------------------------------ tar


def test_tar_round_trip_through_stdout_and_stdin(pod: Pod):
    archive = pod.run("tar", "cf", "-", "-C", ETL, ".")
    assert archive.code == 0, archive.err
    assert len(archive.out) % 10240 == 0  # GNU tar pads to whole records
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(archive.out))]
    assert names[:2] == [".", "./bingen"]  # (tarfile drops a directory's trailing "/")
    extracted = pod.sh(
        "mkdir -p /var/configs/db/etl.staging-1 && tar -xmf - -C /var/configs/db/etl.staging-1",
        stdin=archive.out,
    )
    assert extracted.code == 0, extracted.err
    assert tree_digests(pod.db / "etl.staging-1") == tree_digests(pod.etl)


def test_tar_like_kubectl_cp_strips_the_leading_slash(pod: Pod):
    result = pod.run("tar", "cf", "-", ETL)
    assert result.code == 0
    assert result.err == "tar: Removing leading `/' from member names\n"
    members = tarfile.open(fileobj=io.BytesIO(result.out)).getnames()
    assert "var/configs/db/etl/bingen/assets/1d/100-200" in members
    retried = pod.sh(f"tar cf - {ETL} | tail -c+513")  # kubectl cp --retries resumes like this
    assert retried.code == 0 and retried.out == result.out[512:]


def test_tar_files_from_stdin_with_null_separators(pod: Pod):
    names = b"bingen/assets/1d/100-200\0bingen/allocations/1d/100-200\0"
    result = pod.run("tar", "cf", "-", "-C", ETL, "--null", "-T", "-", stdin=names)
    assert result.code == 0, result.err
    archive = tarfile.open(fileobj=io.BytesIO(result.out))
    assert archive.getnames() == ["bingen/assets/1d/100-200", "bingen/allocations/1d/100-200"]
    data = archive.extractfile("bingen/allocations/1d/100-200").read()
    assert data == (pod.etl / "bingen/allocations/1d/100-200").read_bytes()


def test_tar_missing_member_fails_like_gnu_tar(pod: Pod):
    result = pod.run("tar", "cf", "-", "-C", ETL, "bingen", "nope")
    assert result.code == 2
    assert "tar: nope: Cannot stat: No such file or directory" in result.err
    assert result.err.endswith("tar: Exiting with failure status due to previous errors\n")
    assert "bingen/assets/1d/100-200" in tarfile.open(fileobj=io.BytesIO(result.out)).getnames()


def test_tar_reports_a_file_changed_while_read(pod: Pod):
    target = pod.etl / "bingen/allocations/1d/100-200"

    class Meddler(io.BytesIO):
        def write(self, data):
            if len(data) > 512 and target.stat().st_size == 70_000:
                with open(target, "ab") as handle:  # the cost-model writes while tar reads
                    handle.write(b"more")
            return super().write(data)

    result = pod.run("tar", "cf", "-", "-C", ETL, ".", stdout=Meddler())
    assert result.code == 1
    assert "tar: ./bingen/allocations/1d/100-200: file changed as we read it" in result.err


def test_tar_cut_archive_is_an_unexpected_eof(pod: Pod):
    archive = pod.run("tar", "cf", "-", "-C", ETL, ".").out
    result = pod.sh("mkdir /tmp/x && tar xf - -C /tmp/x", stdin=archive[:30_000])
    assert result.code == 2
    assert "tar: Unexpected EOF in archive" in result.err


def test_tar_refuses_dotdot_members_and_escaping_links(pod: Pod, tmp_path: Path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        evil = tarfile.TarInfo("../outside")
        evil.size = 3
        archive.addfile(evil, io.BytesIO(b"bad"))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        archive.addfile(link)
        fine = tarfile.TarInfo("fine")
        fine.size = 2
        archive.addfile(fine, io.BytesIO(b"ok"))
    result = pod.sh("mkdir -p /tmp/in && tar -xmf - -C /tmp/in", stdin=buffer.getvalue())
    assert result.code == 2
    assert "tar: ../outside: Member name contains '..'" in result.err
    assert "Cannot create symlink to '/etc'" in result.err
    assert pod.sh("cat /tmp/in/fine").out == b"ok"
    assert not (tmp_path / "scratch" / "cost-model" / "outside").exists()


def test_no_tar_in_current_cost_model_image(tmp_path: Path):
    pod = Pod(tmp_path, with_tar=False)
    with pytest.raises(ExecutableNotFound):
        pod.run("tar", "cf", "-", ETL)
    assert pod.sh("tar --help").code == 127
    assert pod.sh("tar --help").err == "sh: tar: not found\n"
    assert pod.run("sha256sum", f"{ETL}/cloudcosts/x").code == 0


def test_debug_container_reaches_the_target_through_proc_1_root(tmp_path: Path):
    pod = Pod(tmp_path, with_tar=False)
    listing = pod.run("ls", "/proc/1/root/var/configs/db/etl/bingen", debug=True)
    assert listing.text == "allocations\nassets\n"
    archive = pod.run("tar", "cf", "-", "-C", "/proc/1/root" + ETL, ".", debug=True)
    assert archive.code == 0
    assert "./bingen/assets/1h/100-200" in tarfile.open(fileobj=io.BytesIO(archive.out)).getnames()
    # busybox find has no -printf (GNU find in the cost-model image has)
    busybox_find = pod.run("find", "/proc/1/root" + ETL, "-printf", "%P\\n", debug=True)
    assert busybox_find.code == 1 and "unrecognized: -printf" in busybox_find.err


# ---------------------------------------------------------------------- path safety


def test_paths_cannot_escape_the_mapped_folders(pod: Pod, tmp_path: Path):
    (tmp_path / "secret").write_text("host secret")
    os.symlink(tmp_path / "secret", pod.etl / "evil")
    refused = pod.run("cat", f"{ETL}/evil")
    assert refused.code == 1 and refused.err == f"cat: {ETL}/evil: Permission denied\n"
    with pytest.raises(PathRefused):
        pod.fs.host_path(f"{ETL}/evil")
    climbed = pod.run("cat", "/var/configs/db/../../../../../secret")
    assert climbed.code == 1 and "No such file or directory" in climbed.err  # stays inside the pod's /
    odd = pod.run("find", ETL, "!", "-type", "f", "!", "-type", "d")
    assert odd.text == f"{ETL}/evil\n"  # the link itself is visible, not followed


def test_mount_point_cannot_be_removed(pod: Pod):
    result = pod.sh("rm -rf /var/configs/db; echo $?")
    assert result.text == "1\n"
    assert "rm: cannot remove '/var/configs/db': Device or resource busy" in result.err
    assert pod.db.is_dir() and not pod.etl.exists()


# ------------------------------------------------------------------------ other tools


def test_find_printf_and_print0(pod: Pod):
    found = pod.run(
        "find", ETL, "-mindepth", "1", "-type", "f", "-name", "100-*", "-printf", "%P %s %y %m %T@\\n"
    )
    assert found.code == 0
    lines = found.text.splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["bingen/allocations/1d/100-200", "70000", "f", "644"],
        ["bingen/assets/1d/100-200", "1000", "f", "644"],
        ["bingen/assets/1h/100-200", "10", "f", "644"],
    ]
    mtime = (pod.etl / "bingen/assets/1d/100-200").stat().st_mtime_ns
    assert lines[1].split()[4] == f"{mtime // 10**9}.{mtime % 10**9:09d}0"
    zero = pod.run("find", ETL, "-maxdepth", "1", "-print0")
    assert zero.out == f"{ETL}\0{ETL}/bingen\0{ETL}/cloudcosts\0".encode()
    dirs = pod.run("find", ETL, "-type", "d", "-printf", "%P\\0")
    assert dirs.out.split(b"\0")[:2] == [b"", b"bingen"]


def test_find_exec_plus_with_stat(pod: Pod):
    result = pod.run("find", ETL, "-type", "f", "-exec", "stat", "-c", "%s %Y %n", "{}", "+")
    assert result.code == 0
    sizes = {line.split(" ", 2)[2]: int(line.split()[0]) for line in result.text.splitlines()}
    assert sizes[f"{ETL}/bingen/assets/1d/100-200"] == 1000 and sizes[f"{ETL}/cloudcosts/x"] == 0


def test_sha256sum_of_several_files_and_check(pod: Pod):
    paths = [f"{ETL}/bingen/assets/1d/100-200", f"{ETL}/cloudcosts/x"]
    result = pod.run("sha256sum", *paths, "/nope")
    assert result.code == 1 and result.err == "sha256sum: /nope: No such file or directory\n"
    expected = hashlib.sha256(b"a" * 1000).hexdigest()
    assert result.text.splitlines()[0] == f"{expected}  {paths[0]}"
    check = pod.sh(f"sha256sum {paths[0]} > /tmp/sums && sha256sum -c /tmp/sums")
    assert check.code == 0 and check.text == f"{paths[0]}: OK\n"


def test_exit_codes_and_shell_operators(pod: Pod):
    assert pod.sh("exit 3").code == 3
    missing = pod.sh("frobnicate --now")
    assert (missing.code, missing.err) == (127, "sh: frobnicate: not found\n")
    assert pod.sh(f"test -d {ETL} && test -f {ETL}/cloudcosts/x && ! test -e /nope").code == 0
    assert pod.sh(f"test -f {ETL}").code == 1
    assert pod.sh("false || echo fallback; true && echo both").text == "fallback\nboth\n"
    assert pod.sh("set -e; false; echo unreachable").code == 1
    assert pod.sh("false | true").code == 0
    assert pod.sh("set -o pipefail; false | true").code == 1
    assert pod.sh("ls /nope 2>/dev/null; echo $?").text == "2\n"
    assert pod.sh("if true; then echo; fi").code == 2  # compound commands: refused, not half-run


def test_shell_expansions(pod: Pod):
    script = (
        'd=$(mktemp -d) && cd $d && echo "in ${d:-none}" > note && '
        f"cat note | wc -c && ls {ETL}/bingen/*/1d"
    )
    result = pod.sh(script)
    assert result.code == 0, result.err
    lines = result.text.splitlines()
    assert lines[0] == str(len("in /tmp/tmp.XXXXXXXXXX\n"))
    assert lines[1:] == [
        f"{ETL}/bingen/allocations/1d:",
        "100-200",
        "",
        f"{ETL}/bingen/assets/1d:",
        "100-200",
    ]


def test_stat_ls_du_tail_wc(pod: Pod):
    file = f"{ETL}/bingen/assets/1d/100-200"
    assert pod.run("stat", "-c", "%s %n %F", file).text == f"1000 {file} regular file\n"
    assert pod.run("stat", "-c", "%F", f"{ETL}/cloudcosts/x").text == "regular empty file\n"
    assert pod.run("stat", "/nope").err == "stat: cannot stat '/nope': No such file or directory\n"
    long = pod.run("ls", "-la", f"{ETL}/bingen/assets/1d").text.splitlines()
    assert (
        long[0].startswith("total ") and long[-1].startswith("-rw-r--r--") and long[-1].endswith(" 100-200")
    )
    assert " 1000 " in long[-1]
    usage = pod.run("du", "-sb", f"{ETL}/bingen/assets/1d").text
    assert usage.split("\t") == [
        str(1000 + os.stat(pod.etl / "bingen/assets/1d").st_size),
        f"{ETL}/bingen/assets/1d\n",
    ]
    assert pod.sh(f"tail -c+991 {file} | wc -c").text == "10\n"
    assert pod.run("wc", "-c", file).text == f"1000 {file}\n"


def test_mkdir_mv_rm_like_a_restore(pod: Pod):
    script = (
        f"mkdir -p {ETL}.new/bingen && echo x > {ETL}.new/bingen/f && rm -rf {ETL} && "
        f"mv {ETL}.new {ETL} && ls {ETL}/bingen"
    )
    result = pod.sh(script)
    assert (result.code, result.text) == (0, "f\n")
    assert (pod.etl / "bingen" / "f").read_text() == "x\n"
    assert pod.run("mkdir", ETL).err == f"mkdir: cannot create directory '{ETL}': File exists\n"
    assert pod.run("mv", "/nope", "/tmp").err == "mv: cannot stat '/nope': No such file or directory\n"
