// A library guest using WASI files. The manifest preopens /data (read-write) as fd 3 and
// /config (read-only) as fd 4: preopens are numbered from 3 in manifest order.

@external("wasi_snapshot_preview1", "path_open")
declare function path_open(
  dir: i32, lookup: i32, path: usize, pathLength: i32, oflags: i32,
  rights: u64, inheriting: u64, fdflags: i32, opened: usize,
): i32;
@external("wasi_snapshot_preview1", "fd_read")
declare function fd_read(fd: i32, iovs: usize, count: i32, done: usize): i32;
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: i32, iovs: usize, count: i32, done: usize): i32;
@external("wasi_snapshot_preview1", "fd_close")
declare function fd_close(fd: i32): i32;

const DATA: i32 = 3;
const CONFIG: i32 = 4;
const STDOUT: i32 = 1;
const CREATE_AND_TRUNCATE: i32 = 1 | 8;
const RIGHT_READ: u64 = 1 << 1;
const RIGHT_WRITE: u64 = 1 << 6;
const scratch = memory.data(16); // one iovec, then the call's result

/** An open descriptor, or minus the WASI errno. */
function open(dir: i32, path: string, oflags: i32, rights: u64): i32 {
  const name = String.UTF8.encode(path);
  const errno = path_open(dir, 0, changetype<usize>(name), name.byteLength, oflags, rights, 0, 0, scratch + 8);
  return errno == 0 ? load<i32>(scratch + 8) : -errno;
}

/** Bytes moved, or minus the WASI errno. */
function transfer(fd: i32, buffer: ArrayBuffer, length: i32, write: bool): i32 {
  store<u32>(scratch, changetype<usize>(buffer));
  store<u32>(scratch, length, 4);
  const errno = write ? fd_write(fd, scratch, 1, scratch + 8) : fd_read(fd, scratch, 1, scratch + 8);
  return errno == 0 ? load<i32>(scratch + 8) : -errno;
}

/** 0, or the WASI errno. */
function writeFile(dir: i32, path: string, text: string): i32 {
  const fd = open(dir, path, CREATE_AND_TRUNCATE, RIGHT_WRITE);
  if (fd < 0) return -fd;
  const bytes = String.UTF8.encode(text);
  const written = transfer(fd, bytes, bytes.byteLength, true);
  fd_close(fd);
  return written < 0 ? -written : 0;
}

export function write_note(): i32 {
  return writeFile(DATA, "note.txt", "remember the milk\n");
}

/** Prints the note; returns its length. */
export function read_note(): i32 {
  const fd = open(DATA, "note.txt", 0, RIGHT_READ);
  if (fd < 0) return fd;
  const buffer = new ArrayBuffer(256);
  const length = transfer(fd, buffer, buffer.byteLength, false);
  fd_close(fd);
  if (length > 0) transfer(STDOUT, buffer, length, true);
  return length;
}

/** Fails under the read-only mount: returns 63 (PERM). */
export function write_config(): i32 {
  return writeFile(CONFIG, "settings.txt", "overwritten\n");
}
