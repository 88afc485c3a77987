"""prepare_disks / cleanup_disks on real loop devices made from sparse files.

Needs root, losetup, mkfs.ext4, blkid and mount; the mount points and the
fstab live under tmp_path, so the machine's own /etc/fstab is never touched.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from components.render import templates
from components.render.host_layout import CREATED_MARKER
from tests.unit.script_runner import run_script

REQUIRED_TOOLS = ["losetup", "mkfs.ext4", "blkid", "mount", "umount", "mountpoint", "findmnt", "wipefs"]
_missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to attach loop devices and mount"),
    pytest.mark.skipif(bool(_missing), reason=f"missing tools: {' '.join(_missing)}"),
]

FSTAB_HEADER = "# /etc/fstab of a test host\nUUID=1111-2222 / ext4 defaults 0 1\n"


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


class LoopDisk:
    """A sparse file attached as a loop device, under a by-id-like stable link."""

    def __init__(self, tmp_path: Path, name: str, size_mb: int = 64):
        self.image = tmp_path / f"{name}.img"
        with open(self.image, "wb") as image:
            image.truncate(size_mb * 1024 * 1024)
        self.loop = sh("losetup", "--find", "--show", str(self.image))
        by_id = tmp_path / "by-id"
        by_id.mkdir(exist_ok=True)
        self.device = str(by_id / f"nvme-Amazon_Elastic_Block_Store_vol{name}")
        os.symlink(self.loop, self.device)

    def detach(self) -> None:
        subprocess.run(["losetup", "-d", self.loop], check=False)


@pytest.fixture
def disks(tmp_path):
    made: list[LoopDisk] = []
    mount_root = tmp_path / "home"

    def make(name: str) -> LoopDisk:
        try:
            disk = LoopDisk(tmp_path, name)
        except subprocess.CalledProcessError as error:
            pytest.skip(f"cannot attach a loop device here: {error.stderr.strip()}")
        made.append(disk)
        return disk

    yield make
    # Unmount whatever the test left mounted under tmp_path, then detach.
    for line in reversed(sh("findmnt", "-rn", "-o", "TARGET").splitlines()):
        if line.startswith(str(mount_root)):
            subprocess.run(["umount", line], check=False)
    for disk in made:
        disk.detach()


@pytest.fixture
def fstab(tmp_path):
    path = tmp_path / "fstab"
    path.write_text(FSTAB_HEADER)
    return path


def prepare(tmp_path, fstab, entries, wait_seconds=3, directories=()):
    script = templates.render("prepare_disks.sh", disks=entries, wait_seconds=wait_seconds, fstab=str(fstab),
                               directories=list(directories), marker=CREATED_MARKER)
    return run_script(script, tmp_path, name="prepare_disks.sh")


def cleanup(tmp_path, fstab, entries, directories=()):
    script = templates.render("cleanup_disks.sh", disks=entries, fstab=str(fstab), directories=list(directories),
                               marker=CREATED_MARKER)
    return run_script(script, tmp_path, name="cleanup_disks.sh")


def entry(tmp_path, disk: LoopDisk, mount: str, label: str) -> dict:
    return {"device": disk.device, "mount_point": str(tmp_path / "home" / mount), "label": label}


def uuid_of(loop: str) -> str:
    return sh("blkid", "-p", "-o", "value", "-s", "UUID", loop)


def test_blank_disks_are_formatted_mounted_and_recorded_once(tmp_path, disks, fstab):
    first, second = disks("0a1"), disks("0b2")
    entries = [entry(tmp_path, first, "ssd1", "pegasus-ssd1"), entry(tmp_path, second, "ssd2", "pegasus-ssd2")]
    result = prepare(tmp_path, fstab, entries)
    assert result.returncode == 0, result.stderr

    for disk, item in zip((first, second), entries):
        uuid = uuid_of(disk.loop)
        assert sh("blkid", "-p", "-o", "value", "-s", "LABEL", disk.loop) == item["label"]
        assert f"UUID={uuid} {item['mount_point']} ext4 defaults,noatime,nofail 0 2\n" in fstab.read_text()
        assert sh("findmnt", "-n", "-o", "SOURCE", "--mountpoint", item["mount_point"]) == disk.loop
        assert f"disk {disk.device} uuid={uuid} formatted mounted at {item['mount_point']}" in result.stdout
    assert fstab.read_text().startswith(FSTAB_HEADER)

    # Second run: nothing changes, nothing is formatted, data survives.
    (Path(entries[0]["mount_point"]) / "data.sst").write_text("precious")
    fstab_before = fstab.read_text()
    again = prepare(tmp_path, fstab, entries)
    assert again.returncode == 0, again.stderr
    assert " formatted mounted at " not in again.stdout and "formatting" not in again.stdout
    assert again.stdout.count(" kept mounted at ") == 2
    assert fstab.read_text() == fstab_before
    assert (Path(entries[0]["mount_point"]) / "data.sst").read_text() == "precious"


def test_cleanup_unmounts_and_removes_only_our_lines_and_keeps_the_data(tmp_path, disks, fstab):
    disk = disks("0c3")
    item = entry(tmp_path, disk, "ssd1", "pegasus-ssd1")
    assert prepare(tmp_path, fstab, [item]).returncode == 0
    (Path(item["mount_point"]) / "data.sst").write_text("precious")
    uuid = uuid_of(disk.loop)

    result = cleanup(tmp_path, fstab, [item])
    assert result.returncode == 0, result.stderr
    assert not os.path.ismount(item["mount_point"])
    assert fstab.read_text() == FSTAB_HEADER
    assert not os.path.exists(item["mount_point"])  # empty once unmounted
    assert uuid_of(disk.loop) == uuid  # never wiped

    again = cleanup(tmp_path, fstab, [item])
    assert again.returncode == 0, again.stderr
    assert fstab.read_text() == FSTAB_HEADER

    # Preparing again finds the file system and its data.
    back = prepare(tmp_path, fstab, [item])
    assert back.returncode == 0, back.stderr
    assert " kept " in back.stdout
    assert (Path(item["mount_point"]) / "data.sst").read_text() == "precious"


def test_cleanup_keeps_a_mount_point_that_is_not_empty(tmp_path, fstab):
    mount_point = tmp_path / "home" / "ssd1"
    mount_point.mkdir(parents=True)
    (mount_point / "left-behind").touch()
    item = {"device": "/dev/disk/by-id/none", "mount_point": str(mount_point), "label": "x"}
    result = cleanup(tmp_path, fstab, [item])
    assert result.returncode == 0, result.stderr
    assert (mount_point / "left-behind").exists()
    assert "not empty" in result.stdout


def test_a_disk_with_a_file_system_is_kept_untouched(tmp_path, disks, fstab):
    disk = disks("0d4")
    sh("mkfs.ext4", "-q", "-L", "theirs", disk.loop)
    uuid = uuid_of(disk.loop)
    result = prepare(tmp_path, fstab, [entry(tmp_path, disk, "ssd1", "pegasus-ssd1")])
    assert result.returncode == 0, result.stderr
    assert uuid_of(disk.loop) == uuid
    assert sh("blkid", "-p", "-o", "value", "-s", "LABEL", disk.loop) == "theirs"
    assert "already holds a file system (ext4): kept untouched" in result.stdout


def write_mbr_partition_table(image: Path) -> None:
    # One Linux partition from sector 2048; blkid reports PTTYPE=dos.
    table = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 10000)
    with open(image, "r+b") as disk:
        disk.seek(446)
        disk.write(table)
        disk.seek(510)
        disk.write(b"\x55\xaa")


@pytest.mark.parametrize("signature", ["partition-table", "swap"])
def test_a_disk_with_another_signature_is_refused(tmp_path, disks, fstab, signature):
    disk = disks("0e5")
    if signature == "swap":
        if shutil.which("mkswap") is None:
            pytest.skip("mkswap is missing")
        sh("mkswap", disk.loop)
    else:
        write_mbr_partition_table(disk.image)
    before = disk.image.read_bytes()[:1024 * 1024]
    item = entry(tmp_path, disk, "ssd1", "pegasus-ssd1")
    result = prepare(tmp_path, fstab, [item])
    assert result.returncode == 1
    assert disk.device in result.stderr and "Nothing was changed" in result.stderr
    assert "wipefs" in result.stderr
    assert disk.image.read_bytes()[:1024 * 1024] == before
    assert fstab.read_text() == FSTAB_HEADER


def test_data_without_a_signature_is_never_formatted(tmp_path, disks, fstab):
    disk = disks("0e7")
    with open(disk.image, "r+b") as image:  # e.g. a wiped signature over old data
        image.seek(5 * 1024 * 1024)
        image.write(b"customer data" * 100)
    before = disk.image.read_bytes()[:8 * 1024 * 1024]
    result = prepare(tmp_path, fstab, [entry(tmp_path, disk, "ssd1", "pegasus-ssd1")])
    assert result.returncode == 1
    assert "hold data" in result.stderr and "Nothing was changed" in result.stderr
    assert disk.image.read_bytes()[:8 * 1024 * 1024] == before
    assert fstab.read_text() == FSTAB_HEADER


def test_a_disk_blkid_cannot_read_is_never_formatted(tmp_path, disks, fstab):
    disk = disks("0e8")
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    blkid = fake_bin / "blkid"  # blkid exits 2 on a read error too, as on "nothing found"
    blkid.write_text("#!/bin/sh\necho \"blkid: error: $4: Input/output error\" >&2\nexit 2\n")
    blkid.chmod(0o755)
    script = templates.render("prepare_disks.sh", disks=[entry(tmp_path, disk, "ssd1", "pegasus-ssd1")],
                               directories=[], marker=CREATED_MARKER,
                               wait_seconds=3, fstab=str(fstab))
    result = run_script(script, tmp_path, fake_bin=fake_bin, name="prepare_disks.sh")
    assert result.returncode == 1
    assert "blkid could not read" in result.stderr and "Input/output error" in result.stderr
    assert "formatting" not in result.stdout
    assert disk.image.read_bytes()[:1024 * 1024] == bytes(1024 * 1024)


def test_another_uuid_in_fstab_for_the_mount_point_fails_clearly(tmp_path, disks, fstab):
    disk = disks("0f6")
    item = entry(tmp_path, disk, "ssd1", "pegasus-ssd1")
    fstab.write_text(FSTAB_HEADER + f"UUID=deadbeef-0000 {item['mount_point']} ext4 defaults 0 2\n")
    result = prepare(tmp_path, fstab, [item])
    assert result.returncode == 1
    assert "UUID=deadbeef-0000" in result.stderr and "another disk is configured there" in result.stderr
    assert not os.path.ismount(item["mount_point"])


def test_a_missing_device_fails_after_the_wait_naming_it(tmp_path, fstab):
    item = {"device": str(tmp_path / "by-id" / "nvme-missing"), "mount_point": str(tmp_path / "home" / "ssd1"),
            "label": "pegasus-ssd1"}
    result = prepare(tmp_path, fstab, [item], wait_seconds=1)
    assert result.returncode == 1
    assert "nvme-missing did not appear within 1s" in result.stderr


def test_a_label_longer_than_16_characters_is_refused_before_formatting(tmp_path, disks, fstab):
    disk = disks("0a7")
    result = prepare(tmp_path, fstab, [entry(tmp_path, disk, "ssd1", "x" * 17)])
    assert result.returncode == 1
    assert "longer than 16" in result.stderr
    assert subprocess.run(["blkid", "-p", disk.loop], capture_output=True).returncode == 2


def operators_mount(tmp_path, disk):
    """A file system the operator made and mounted on a directory of their own."""
    sh("mkfs.ext4", "-q", disk.device)
    directory = tmp_path / "home" / "data1"  # under the fixture's mount root: unmounted after the test
    directory.mkdir(parents=True)
    sh("mount", disk.device, str(directory))
    return directory


def test_an_operators_mounted_directory_is_used_and_left_as_it_was(tmp_path, disks, fstab):
    directory = operators_mount(tmp_path, disks("1a7"))
    (directory / "operator-file").write_text("theirs\n")
    before = fstab.read_text()
    result = prepare(tmp_path, fstab, [], directories=[str(directory)])
    assert result.returncode == 0, result.stderr
    assert f"directory {directory} used as it is" in result.stdout
    assert (directory / "pegasus" / CREATED_MARKER).exists()
    assert fstab.read_text() == before, "the operator's mount went into fstab"
    result = cleanup(tmp_path, fstab, [], directories=[str(directory)])
    assert result.returncode == 0, result.stderr
    assert os.path.ismount(directory), "the operator's mount was unmounted"
    assert sorted(p.name for p in directory.iterdir()) == ["lost+found", "operator-file"]
    assert fstab.read_text() == before


def test_an_operators_pegasus_directory_is_never_removed(tmp_path, disks, fstab):
    directory = operators_mount(tmp_path, disks("1b8"))
    (directory / "pegasus").mkdir()  # made by the operator, not by this program: no marker
    assert prepare(tmp_path, fstab, [], directories=[str(directory)]).returncode == 0
    assert cleanup(tmp_path, fstab, [], directories=[str(directory)]).returncode == 0
    assert (directory / "pegasus").is_dir()


def test_a_directory_that_is_not_a_mount_point_is_refused(tmp_path, fstab):
    directory = tmp_path / "data" / "plain"
    directory.mkdir(parents=True)
    result = prepare(tmp_path, fstab, [], directories=[str(directory)])
    assert result.returncode == 1
    assert "is not a mount point" in result.stderr and "root disk" in result.stderr
    assert not (directory / "pegasus").exists()
