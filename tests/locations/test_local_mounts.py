"""How many copies a local location runs at a time: by the file system its root lies on."""

from __future__ import annotations

import os

from airflow_datasync.locations.local import LocalLocation
from airflow_datasync.locations.local_mounts import MOUNT_THREADS, copy_threads, file_system_type
from airflow_datasync.options import TaskOptions

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /dev/shm rw,relatime shared:2 - tmpfs tmpfs rw
41 22 0:40 / /mnt/nas rw,relatime shared:9 - nfs4 10.0.0.5:/export rw,vers=4.2
42 41 0:41 / /mnt/nas/scratch rw,relatime shared:10 - tmpfs tmpfs rw
43 22 0:42 / /mnt/with\\040space rw,relatime shared:11 - fuse.sshfs host:/ rw
"""


def test_the_deepest_mount_point_above_a_path_names_its_file_system(tmp_path):
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    for path, kind in [("/home/u/data", "ext4"), ("/dev/shm/x", "tmpfs"), ("/mnt/nas", "nfs4"), ("/mnt/nas/a/b", "nfs4"),
                       ("/mnt/nas/scratch/c", "tmpfs"), ("/mnt/nasty", "ext4"), ("/mnt/with space/f", "fuse.sshfs")]:
        assert file_system_type(path, str(table)) == kind, path
    assert file_system_type("/x", str(tmp_path / "absent")) is None


def test_a_local_disk_gets_a_copy_per_core_and_a_mount_more():
    cores = len(os.sched_getaffinity(0))
    assert file_system_type("/dev/shm") == "tmpfs"
    assert copy_threads("/dev/shm") == min(MOUNT_THREADS, cores)
    assert copy_threads("/proc") == MOUNT_THREADS  # not a disk's file system: as for a network mount
    local = LocalLocation("/dev/shm")
    assert local.capabilities.concurrency == min(MOUNT_THREADS, cores)
    assert TaskOptions().verify_workers(local, local) == min(MOUNT_THREADS, cores)


def test_small_files_between_local_disks_get_one_thread_and_big_ones_a_thread_per_core(tmp_path):
    cores = len(os.sched_getaffinity(0))
    disk, mount = LocalLocation("/dev/shm"), LocalLocation("/proc")  # /proc: no disk's file system
    assert disk.capabilities.small_file_concurrency == 1
    assert mount.capabilities.small_file_concurrency is None
    options = TaskOptions()
    workers = options.workers(disk, disk)
    assert options.small_file_workers(workers, [4096] * 5000, disk, disk) == 1
    assert options.small_file_workers(workers, [500 << 20, 500 << 20], disk, disk) == min(MOUNT_THREADS, cores)
    assert options.small_file_workers(workers, [], disk, disk) == workers
    # Small on average, but one file that one thread would copy while every small one waits behind it.
    assert options.small_file_workers(workers, [4096] * 100_000 + [10 << 30], disk, disk) == workers
    # A mount's round trips (or a store's requests) are overlapped by threads whatever the file sizes.
    assert options.small_file_workers(options.workers(disk, mount), [4096] * 5000, disk, mount) == MOUNT_THREADS
    # A concurrency asked for is kept.
    assert TaskOptions(concurrency=4).small_file_workers(4, [4096] * 5000, disk, disk) == 4
